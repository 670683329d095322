-- GET with a bearer token: wrk http://127.0.0.1:PORT/path -s get_auth.lua -- TOKEN
init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

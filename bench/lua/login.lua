-- OAuth2 password-form login of one account: -- EMAIL PASSWORD
init = function(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "username=" .. args[1] .. "&password=" .. args[2]
end

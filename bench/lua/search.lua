-- Admin list with a search term that changes on every request (user<number>, a few to a few
-- dozen matches among 100k users): -- TOKEN LIMIT
local token, limit
local next_tid = 0
setup = function(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
init = function(args)
  token = args[1]
  limit = args[2] or "20"
  math.randomseed(os.time() + (tid or 0))
end
request = function()
  local path = string.format("/users/?search=user%d&limit=%s", math.random(100, 9999), limit)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

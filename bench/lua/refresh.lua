-- Refresh-token rotation: each refresh spends its token and answers a successor, which goes back
-- into this thread's pool for the next request. The pool starts with the tokens of a file (one
-- per line, from separate logins), split between threads: -- TOKENS_FILE
local tokens = {}
local next_tid, nthreads = 0, 0
setup = function(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
init = function(args)
  local threads = tonumber(args[2] or "2")
  local i = 0
  for line in io.lines(args[1]) do
    if i % threads == tid then table.insert(tokens, line) end
    i = i + 1
  end
end
local last = "none"
request = function()
  -- An empty pool means earlier refreshes failed; the spent token then counts as an error.
  local t = table.remove(tokens) or last
  last = t
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. t .. '"}')
end
response = function(status, headers, body)
  local t = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if t then table.insert(tokens, t) end
end

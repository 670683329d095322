-- Registration of a new account per request; emails are unique per run, thread and request:
-- -- RUN_ID PASSWORD
local counter = 0
local run, password
local next_tid = 0
setup = function(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
init = function(args)
  run = args[1]
  password = args[2]
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"r%s-%d-%d@bench.example","password":"%s","full_name":"Bench %d"}',
    run, tid, counter, password, counter)
  return wrk.format("POST", "/auth/register", { ["Content-Type"] = "application/json" }, body)
end

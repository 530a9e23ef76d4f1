-- wrk script: GET /api/v1/log/entries?logIndex=N for a random N below SIZE
-- (an entry with its inclusion proof). Usage:
--   SIZE=1000000 wrk -t1 -c64 -d20s -s benches/wrk/random-entry.lua http://127.0.0.1:3000
local size = tonumber(os.getenv("SIZE") or "1000000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/log/entries?logIndex=" .. math.random(0, size - 1))
end

-- wrk script: GET /api/v1/log/proof?firstSize=N&lastSize=SIZE for a random N
-- (a consistency proof to the current tree head). SIZE must be the log's size:
--   SIZE=1000000 wrk -t1 -c64 -d20s -s benches/wrk/consistency-proof.lua http://127.0.0.1:3000
local size = tonumber(os.getenv("SIZE") or "1000000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v1/log/proof?firstSize=" .. math.random(1, size) .. "&lastSize=" .. size)
end

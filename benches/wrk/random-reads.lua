-- wrk script: random reads over a log of SIZE entries.
--   READ=entry (default): GET /api/v1/log/entries?logIndex=N, an entry with its
--     inclusion proof, for random N below SIZE;
--   READ=proof: GET /api/v1/log/proof?firstSize=N&lastSize=SIZE, a consistency
--     proof to the current tree head (SIZE must be the log's size).
-- POOL requests (default 1,000,000) are drawn and formatted once in init, then
-- sent in turn: formatting a request in Lua for every call costs wrk enough CPU
-- to show in the result on a small box.
-- One wrk thread per core: a single thread caps the rate it can measure.
--   SIZE=1000000 wrk -t2 -c64 -d20s -s benches/wrk/random-reads.lua http://127.0.0.1:3000
local size = tonumber(os.getenv("SIZE") or "1000000")
local count = tonumber(os.getenv("POOL") or "1000000")
local read = os.getenv("READ") or "entry"
local pool = {}
local i = 0

local function path()
  if read == "proof" then
    return "/api/v1/log/proof?firstSize=" .. math.random(1, size) .. "&lastSize=" .. size
  end
  return "/api/v1/log/entries?logIndex=" .. math.random(0, size - 1)
end

-- Each thread draws its own indexes: seeded alike, threads would ask for the
-- same entries moments apart and find them in the server's CPU caches.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

init = function(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  for n = 1, count do
    pool[n] = wrk.format("GET", path())
  end
end

request = function()
  i = i % count + 1
  return pool[i]
end

-- wrk script: POST pre-built bodies in rotation, count HTTP statuses, print a JSON summary.
--
--   wrk -t1 -c32 -d10s -s bench/wrk_post.lua http://127.0.0.1:8080/v1/systems/dept-a/records \
--       -- <bodies dir> <count> <content-type>
--
-- Bodies are the files <dir>/0 .. <dir>/<count-1>; every request is formatted once, in init().
-- No Idempotency-Key is sent, so every request is a new message. The last output line is
-- "WRK_JSON {...}" (read by bench/ingest.py and bench/signed_ingest.py).
--
-- Signed requests (RFC 9421), each sent once:
--
--   wrk ... -s bench/wrk_post.lua URL -- <requests.tsv> <content-type>
--
-- Each line of the TSV is: Signature-Input <TAB> Signature <TAB> Content-Digest <TAB> body.
-- A signed request carries a nonce, so the file must hold more requests than a run sends; if
-- it runs out, the script wraps around and the replays show up as 401s in the summary.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function signed(path, ctype)
  for line in io.lines(path) do
    local si, sig, dig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = ctype,
      ["Signature-Input"] = si,
      ["Signature"] = sig,
      ["Content-Digest"] = dig,
    }, body)
  end
end

function init(args)
  reqs = {}
  idx = 0
  statuses = {}
  if args[1]:match("%.tsv$") then
    signed(args[1], args[2])
    return
  end
  local dir, n, ctype = args[1], tonumber(args[2]), args[3]
  for i = 0, n - 1 do
    local f = assert(io.open(dir .. "/" .. i, "rb"))
    local body = f:read("*a")
    f:close()
    reqs[#reqs + 1] = wrk.format("POST", nil, { ["Content-Type"] = ctype }, body)
  end
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local st = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses") or {}
    for k, v in pairs(s) do
      st[k] = (st[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(st) do
    parts[#parts + 1] = string.format('"%s": %d', k, v)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.6f, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "max": %.3f}, ' ..
    '"statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3,
    table.concat(parts, ", ")))
end

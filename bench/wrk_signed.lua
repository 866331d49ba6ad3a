-- wrk script: POST pre-signed requests (RFC 9421), each exactly once, count statuses.
--
--   wrk -t1 -c32 -d10s -s bench/wrk_signed.lua URL -- <requests.tsv> <content-type>
--
-- Each line of the TSV is: Signature-Input <TAB> Signature <TAB> Content-Digest <TAB> body.
-- A signed request carries a nonce, so sending one twice would be refused as a replay: the
-- file holds more requests than a run can send; if it runs out, the script wraps around and
-- the replays show up as 401s in the summary (then make the file larger).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path, ctype = args[1], args[2]
  reqs = {}
  for line in io.lines(path) do
    local si, sig, dig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = ctype,
      ["Signature-Input"] = si,
      ["Signature"] = sig,
      ["Content-Digest"] = dig,
    }, body)
  end
  idx = 0
  statuses = {}
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
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.3f, "statuses": {%s}, "errors": %d, ' ..
    '"latency_ms": {"p50": %.3f, "p99": %.3f, "max": %.3f}}\n',
    summary.requests, summary.duration / 1e6, table.concat(parts, ", "),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end

-- wrk script for bench/slack_ack.py: cycle through pre-signed, distinct Slack slash commands.
--
--   wrk -t T -c C -d Ds --latency -s bench/slack_ack.lua http://127.0.0.1:PORT -- <set file> T
--
-- The set file (written by bench/slack_load.py just before the run) holds: the request timestamp,
-- the three constant pieces of the form body, a tag, then one v0 signature (hex) per line. Request i
-- has body P .. tag..i .. Q .. tag..i .. R (its response_url and trigger_id carry tag..i), so every
-- request is distinct and none is a replay. Thread t of T sends lines i with i % T == t, in order.
-- done() prints one line "SLACK_ACK_JSON {...}" with wrk's counts and latency percentiles (us),
-- plus what the responses said: 200s, "busy" acks, acks that carry the answer itself (Block Kit
-- "blocks" in the body), 401s, other statuses, and whether a thread ran
-- out of distinct requests (then it wraps around and the server will see replays).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  local f = assert(io.open(path, "r"))
  ts = f:read("*l")
  P = f:read("*l")
  Q = f:read("*l")
  R = f:read("*l")
  tag = f:read("*l")
  sigs, idxs = {}, {}
  local i = 0
  for line in f:lines() do
    if i % nthreads == id then
      sigs[#sigs + 1] = line
      idxs[#idxs + 1] = i
    end
    i = i + 1
  end
  f:close()
  sent, wrapped, ok, busy, in_ack, unauthorized, other = 0, 0, 0, 0, 0, 0, 0
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Slack-Request-Timestamp"] = ts,
  }
end

function request()
  sent = sent + 1
  local k = sent
  if k > #sigs then
    wrapped = wrapped + 1
    k = (k - 1) % #sigs + 1
  end
  local rid = tag .. idxs[k]
  headers["X-Slack-Signature"] = "v0=" .. sigs[k]
  return wrk.format("POST", "/slack/events", headers, P .. rid .. Q .. rid .. R)
end

function response(status, _, body)
  if status == 200 then
    ok = ok + 1
    if body and string.find(body, "busy right now", 1, true) then
      busy = busy + 1
    elseif body and string.find(body, '"blocks"', 1, true) then
      in_ack = in_ack + 1
    end
  elseif status == 401 then
    unauthorized = unauthorized + 1
  else
    other = other + 1
  end
end

function done(summary, latency, _)
  local t = { ok = 0, busy = 0, in_ack = 0, unauthorized = 0, other = 0, wrapped = 0 }
  for _, thread in ipairs(threads) do
    for key, _ in pairs(t) do
      t[key] = t[key] + (thread:get(key) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'SLACK_ACK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p75_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"ok":%d,"busy":%d,"in_ack":%d,"unauthorized":%d,' ..
    '"other_status":%d,"wrapped":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(75),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    t.ok, t.busy, t.in_ack, t.unauthorized, t.other, t.wrapped, e.connect, e.read, e.write, e.timeout))
end

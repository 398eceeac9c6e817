-- wrk -t2 -c64 -d10s -s benches/wrk/post_401.lua http://127.0.0.1:8089
-- POST click-to-call without a token: 401 (auth is the first thing checked).
wrk.method = "POST"
wrk.path = "/api/pbx/calls/click-to-call"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"from_extension":"1001","to_phone":"0987654321"}'

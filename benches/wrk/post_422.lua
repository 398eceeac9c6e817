-- wrk -t2 -c64 -d10s -s benches/wrk/post_422.lua http://127.0.0.1:8089
-- POST click-to-call with the demo token and an invalid body: 422
-- validation_failed (auth, content type, JSON, validation; no call placed).
wrk.method = "POST"
wrk.path = "/api/pbx/calls/click-to-call"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sandbox-token"
wrk.body = '{"from_extension":"1","to_phone":"x"}'

-- wrk script: POST /analytics with realistic ~500-byte events. BATCH (env) events per
-- request: 1 sends one object, more sends a JSON array. 512 prebuilt bodies with distinct
-- session ids rotate, so partitioning and the per-event work are realistic while wrk
-- itself stays cheap. event_id is left to the server (a UUIDv7), as most clients do.
local batch = tonumber(os.getenv("BATCH") or "1")
local channels = {"web", "mobile", "chat", "speech", "agent"}
local types = {"page_view", "interaction", "message", "utterance", "task_step"}
local bodies = {}

local function one_event(i, j)
  local c = channels[(i + j) % #channels + 1]
  return string.format(
    '{"timestamp":"2026-11-23T10:%02d:%02d.%03dZ","channel":"%s","platform":"web-desktop",' ..
    '"event_type":"%s","event_category":"user_action",' ..
    '"resource_id":"https://shop.example.com/products/%d?ref=home","resource_title":"Product %d - Example Shop",' ..
    '"interaction_target":"add-to-cart-button","session_id":"sess-%08x-%04x",' ..
    '"user_id":"user-%06d","device_id":"dev-%08x","client_version":"4.12.0",' ..
    '"interaction_value":%d.5,"interaction_text":"blue kettle 1.7l",' ..
    '"metadata":{"viewport":"1440x900","referrer":"https://search.example.com/?q=kettle","ab":"B"}}',
    i % 60, j % 60, (i * 7 + j) % 1000, c, types[(i * 3 + j) % #types + 1], i, i, i * 7919, j,
    i % 100000, i * 31, (i + j) % 100)
end

for i = 1, 512 do
  if batch == 1 then
    bodies[i] = one_event(i, 0)
  else
    local parts = {}
    for j = 1, batch do parts[j] = one_event(i, j) end
    bodies[i] = "[" .. table.concat(parts, ",") .. "]"
  end
end

local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/analytics", {["Content-Type"] = "application/json"},
                    bodies[n % 512 + 1])
end

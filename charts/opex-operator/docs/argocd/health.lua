-- Argo CD health of the opex.dev kinds (Incident, DriftCheck, Rollback), read from what the
-- operator writes: status.observedGeneration, the Ready condition, Stalled/Reconciling when
-- present (Flux-style, negative polarity) and status.phase. Lua 5.1, as Argo CD runs it.
local hs = {}

local function condition(conditions, wanted)
  for _, c in ipairs(conditions or {}) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  return result("Progressing", "Waiting for the opex operator to observe this " .. obj.kind)
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  return result("Progressing", "Waiting for the opex operator to observe generation " .. generation)
end

local ready = condition(status.conditions, "Ready")
local stalled = condition(status.conditions, "Stalled")
local reconciling = condition(status.conditions, "Reconciling")
local phase = status.phase
local message = (ready ~= nil and ready.message) or phase or ""

if stalled ~= nil and stalled.status == "True" then
  return result("Degraded", stalled.message or message)
end
if phase == "Failed" or phase == "Aborted" then
  return result("Degraded", message)
end
-- Waiting for a person to approve a remediation step or a rollback: paused, not broken.
if phase == "AwaitingApproval" then
  return result("Suspended", message)
end
if reconciling ~= nil and reconciling.status == "True" then
  return result("Progressing", reconciling.message or message)
end
if ready == nil then
  return result("Progressing", message)
end
if ready.status == "True" then
  return result("Healthy", message)
end
if obj.kind == "DriftCheck" then
  -- A check that could not run (plan failed, state lock held, source unavailable, ...).
  if ready.status == "False" then
    return result("Degraded", ready.reason .. ": " .. message)
  end
end
if ready.status == "False" and (ready.reason == "ReconcileError" or ready.reason == "InvalidSpec") then
  return result("Degraded", ready.reason .. ": " .. message)
end
return result("Progressing", message)

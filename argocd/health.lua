-- Argo CD health of a swarm-operator resource, any kind (SwarmService, SwarmNetwork, SwarmSecret,
-- SwarmConfig, SwarmCluster, SwarmStack). The operator writes kstatus-style conditions (Ready,
-- Reconciling, Stalled) and status.observedGeneration; this reads them:
--   not yet observed            Progressing
--   Stalled, paused             Suspended (Swarm paused a failed update; a stack's spec.paused)
--   Stalled, anything else      Degraded  (rolled back, tasks failing, invalid spec, source missing)
--   Ready                       Healthy
--   otherwise                   Progressing (updating, deleting, cluster unavailable for now)
-- Lua 5.1 with the base and table libraries only, as Argo CD runs checks from argocd-cm.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for swarm-operator to report a status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for swarm-operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
local stalled = conditions["Stalled"]
local ready = conditions["Ready"]
local reconciling = conditions["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  if stalled.reason == "UpdatePaused" or stalled.reason == "Paused" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
elseif ready ~= nil then
  hs.message = ready.message
end
return hs

-- Argo CD health check for chroma.operator.dev/ChromaCluster.
-- Reads the operator's conditions (Ready, Degraded, Progressing) and phase; written for
-- Argo CD's Lua 5.1 runtime. Install: see docs/gitops.md.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
local degraded = condition(status.conditions, "Degraded")
local progressing = condition(status.conditions, "Progressing")

if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = status.message or describe(ready, "The cluster failed")
elseif is_true(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The cluster is degraded")
elseif is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "The cluster is ready")
elseif is_true(progressing) then
  hs.status = "Progressing"
  hs.message = describe(progressing, "The cluster is being provisioned")
elseif ready ~= nil and ready.status == "False" then
  -- Not ready and not progressing: something needs a person (e.g. a refused change).
  hs.status = "Degraded"
  hs.message = describe(ready, "The cluster is not ready")
else
  hs.status = "Progressing"
  hs.message = "Waiting for the cluster's conditions"
end
return hs

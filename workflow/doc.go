// Package workflow is the contract of a pgrotate rotation: the State passed between the
// steps of the state machine, the secret formats and their validation, the alternation of
// login users, and one error type per error name the state machine matches.
//
// It imports only the standard library, so every other package (handlers, adapters, the
// CDK app) can depend on it without pulling anything else in.
//
// The State carries references only (secret ARN, version ids, user names, endpoints,
// service names, LSNs, deployment ids). Passwords travel as Password values, which redact
// themselves in every printing path; the clear text is reachable only through Reveal.
package workflow

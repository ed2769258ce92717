// Package layout holds no code: its test checks the module's import arrows (DESIGN §11)
// with `go list`: mains → handlers → adapters → workflow, workflow and the registry's data
// import nothing of the module, no production package imports local/, and the CDK app never
// reaches pgx, a handler or an adapter.
package layout

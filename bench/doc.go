// Package bench measures Rampart against the alternatives an operator would
// otherwise use, side by side in the same run: the nftables enforcer against
// `nft -f` of the same ruleset and against a linear iptables-restore
// equivalent, verdict-map dispatch against linear dispatch on real traffic,
// the API against a bare Echo handler, the store's engines side by side
// (SQLite, and PostgreSQL holding the same rows: Engine, Dataset.CopyTo),
// a console process with agents in namespaces of their own (MeasureFleet),
// and the binary's start time and memory. The driver bench/cmd/benchreport
// runs it all (`make bench`) and writes BENCHMARKS.md.
//
// Every benchmark checks the answers it times (HTTP status and body, the
// kernel's ruleset and rule counters) and returns an error at the first
// wrong one: a figure is never the speed of an error. Configurations that
// are compared take turns in alternating order (Order).
//
// Everything that touches the network happens in network namespaces that
// the benchmark creates and deletes; the host's own ruleset is never read or
// changed. Nothing is timed under `go test`: the tests check the checks, at
// a tiny scale.
package bench

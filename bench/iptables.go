package bench

import (
	"fmt"
	"strings"

	"github.com/rampart-fw/rampart/enforcer"
)

// IPTablesRestore renders the linear iptables equivalent of rs for
// iptables-restore (v6 false) or ip6tables-restore (v6 true): the same group
// chains with the same rules in the same order, but dispatched by one rule
// per server and direction in FORWARD (`-i vmN -j gK_out`, then
// `-o vmN -j gK_in`), where Rampart looks the interface up in a verdict
// map. Egress rules come first, as Rampart's egress chain runs before its
// ingress chain; an outbound chain's accept is a RETURN, so that traffic
// between two servers still meets the receiver's inbound chain, as in
// Rampart, where an accept in one base chain does not skip the next.
// INPUT and OUTPUT hold the host chains. Only the filter table is written:
// iptables-restore replaces it whole.
func IPTablesRestore(rs *enforcer.Ruleset, v6 bool) string {
	short := map[string]string{}
	for i, g := range rs.Groups {
		short[g.In.Name] = fmt.Sprintf("g%d_in", i)
		short[g.Out.Name] = fmt.Sprintf("g%d_out", i)
	}
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, g := range rs.Groups {
		fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", short[g.In.Name], short[g.Out.Name])
	}
	for _, g := range rs.Groups {
		writeIPTChain(&b, short[g.In.Name], g.In.Rules, short, v6, false)
		writeIPTChain(&b, short[g.Out.Name], g.Out.Rules, short, v6, true)
	}
	for _, e := range rs.FromServer {
		fmt.Fprintf(&b, "-A FORWARD -i %s -j %s\n", e.IfName, short[e.Chain])
	}
	for _, e := range rs.ToServer {
		fmt.Fprintf(&b, "-A FORWARD -o %s -j %s\n", e.IfName, short[e.Chain])
	}
	writeIPTChain(&b, "INPUT", rs.HostIn.Rules, short, v6, false)
	writeIPTChain(&b, "OUTPUT", rs.HostOut.Rules, short, v6, false)
	b.WriteString("COMMIT\n")
	return b.String()
}

func writeIPTChain(b *strings.Builder, chain string, rules []enforcer.Rule, short map[string]string, v6, outbound bool) {
	for _, r := range rules {
		if line, ok := iptRule(r, short, v6, outbound); ok {
			fmt.Fprintf(b, "-A %s%s\n", chain, line)
		}
	}
}

// iptRule renders one rule; ok is false when it belongs to the other
// family.
func iptRule(r enforcer.Rule, short map[string]string, v6, outbound bool) (string, bool) {
	switch {
	case r.Family == enforcer.FamilyIPv4 && v6, r.Family == enforcer.FamilyIPv6 && !v6:
		return "", false
	case r.L4 == enforcer.L4ICMP && v6, r.L4 == enforcer.L4ICMPv6 && !v6:
		return "", false
	}
	var p []string
	if r.IIFName != "" {
		p = append(p, "-i", r.IIFName)
	}
	if r.OIFName != "" {
		p = append(p, "-o", r.OIFName)
	}
	if r.CTEstablished {
		p = append(p, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
	}
	if r.SAddr.IsValid() {
		p = append(p, "-s", r.SAddr.String())
	}
	if r.DAddr.IsValid() {
		p = append(p, "-d", r.DAddr.String())
	}
	switch r.L4 {
	case enforcer.L4TCP:
		p = append(p, "-p", "tcp")
	case enforcer.L4UDP:
		p = append(p, "-p", "udp")
	case enforcer.L4ICMP:
		p = append(p, "-p", "icmp")
	case enforcer.L4ICMPv6:
		p = append(p, "-p", "ipv6-icmp")
	}
	switch {
	case r.DPortFrom != 0 && r.DPortTo != 0:
		p = append(p, "--dport", fmt.Sprintf("%d:%d", r.DPortFrom, r.DPortTo))
	case r.DPortFrom != 0:
		p = append(p, "--dport", fmt.Sprint(r.DPortFrom))
	}
	switch r.Verdict.Kind {
	case "accept":
		if outbound {
			p = append(p, "-j", "RETURN")
		} else {
			p = append(p, "-j", "ACCEPT")
		}
	case "drop":
		p = append(p, "-j", "DROP")
	case "jump":
		p = append(p, "-j", short[r.Verdict.Chain])
	default:
		return "", false // dispatch rules of the base chains: done in FORWARD
	}
	return " " + strings.Join(p, " "), true
}

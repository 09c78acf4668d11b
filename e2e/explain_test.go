package e2e

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/playwright-community/playwright-go"
)

// TestPacketTester is the Explain flow: a rule added behind a broader one
// shows that it is shadowed, as it is added and beside its row; the Test a
// packet form answers inline, naming the rule that decides and marking its
// row, answers again when the rules move, and refuses a bad address beside
// its field; a server's page tests a packet from another server.
func TestPacketTester(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "explain")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-explain", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")

	// A drop of SSH from one network, behind the accept of SSH from
	// anywhere: it never matches.
	p.preset("SSH")
	p.choose("Action", "Drop")
	p.fill("IP range", "203.0.113.0/24")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Drop TCP 203.0.113.0/24 22")
	p.visible(p.main().Locator("#rules-flash").GetByText(regexp.MustCompile(`^Rule 2 added\. It is shadowed: never matches: .* by rule 1\.$`)),
		"the add-rule answer saying that rule 2 is shadowed by rule 1")
	findings := p.role("list", "Findings about rule 2")
	p.visible(findings.GetByText(regexp.MustCompile(`never matches: .* by rule 1\.$`)), "rule 2's finding, in words")
	if err := expect.Locator(p.inRules("inbound", "link", "Edit rule 2")).ToHaveAccessibleDescription(regexp.MustCompile(`Shadowed: never matches`)); err != nil {
		t.Errorf("Edit rule 2 is not described by its finding: %v", err)
	}
	p.see("shadowed-rule")
	rules := srv.rules(t, tok, g.ID, "inbound")
	if len(rules) != 2 {
		t.Fatalf("API: %d inbound rules, want 2", len(rules))
	}

	// SSH from the network of rule 2 is accepted, by rule 1.
	tester := p.role("form", "Test a packet")
	p.choose("Packet direction", "Inbound (to the servers)")
	p.choose("Packet protocol", "TCP")
	p.fill("Remote address", "203.0.113.7")
	p.fill("Destination port", "22")
	p.click(roleIn(tester, "button", "Test packet"), "Test packet")
	answer := p.main().GetByTestId("tester-answer")
	p.visible(answer.GetByText("Accepted by rule 1.", playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)}),
		"the answer naming rule 1")
	p.visible(roleIn(answer, "row", regexp.MustCompile(`Rule 1.*Matches: decides`)), "rule 1 marked as deciding in the trace")
	if err := expect.Locator(p.Locator("#rule-" + rules[0].ID)).ToHaveClass(regexp.MustCompile(`\bdecides\b`)); err != nil {
		t.Errorf("rule 1's row is not marked: %v", err)
	}
	if err := expect.Locator(p.Locator("#rules tr.decides")).ToHaveCount(1); err != nil {
		t.Errorf("rows marked: %v", err)
	}
	p.see("tester-rule-1")

	// Moving the drop first tests the packet again: it is dropped now, by
	// the rule that became rule 1.
	p.click(p.inRules("inbound", "button", "Move rule 2 up"), "Move rule 2 up")
	p.expectRules("inbound", "1 Drop TCP 203.0.113.0/24 22", "2 Accept TCP 0.0.0.0/0 22")
	p.visible(answer.GetByText("Dropped by rule 1.", playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)}),
		"the answer for the rules as they are now")
	if err := expect.Locator(p.Locator("#rule-" + rules[1].ID)).ToHaveClass(regexp.MustCompile(`\bdecides\b`)); err != nil {
		t.Errorf("the drop's row is not marked after the move: %v", err)
	}
	if err := expect.Locator(p.Locator("#rules tr.decides")).ToHaveCount(1); err != nil {
		t.Errorf("rows marked: %v", err)
	}
	p.flushProblems() // the rules' and the tester's swaps settled, for the screenshot
	p.see("tester-after-move")

	// Another port: the default policy decides, and no row is marked.
	p.fill("Destination port", "23")
	p.click(roleIn(tester, "button", "Test packet"), "Test packet")
	p.visible(answer.GetByText("Dropped by the default policy.", playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)}),
		"the answer naming the default policy")
	if err := expect.Locator(p.Locator("#rules tr.decides")).ToHaveCount(0); err != nil {
		t.Errorf("a row is still marked after the default policy decided: %v", err)
	}
	p.see("tester-default")

	// A bad address is refused beside its field.
	p.fill("Remote address", "203.0.113.300")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/"+g.ID+"/evaluate")
	p.click(roleIn(tester, "button", "Test packet"), "Test packet")
	if err := expect.Locator(p.label("Remote address")).ToHaveAttribute("aria-invalid", "true"); err != nil {
		t.Errorf("a bad address is not marked invalid: %v", err)
	}
	if err := expect.Locator(p.label("Remote address")).ToHaveAccessibleDescription(regexp.MustCompile(`not an IP address`)); err != nil {
		t.Errorf("a bad address is not described by its error: %v", err)
	}
	if err := expect.Locator(answer).ToHaveCount(0); err != nil {
		t.Errorf("an answer is shown for a refused packet: %v", err)
	}
	p.see("tester-error")

	// A server's page tests a packet from another server: the sender's
	// outbound group, then the receiver's inbound group.
	vm := srv.createServer(t, tok, map[string]any{"name": "explain-vm", "interface": "vnet7", "addresses": []string{"192.0.2.7"},
		"security_group": g.ID})
	srv.createServer(t, tok, map[string]any{"name": "explain-peer", "interface": "vnet8", "addresses": []string{"192.0.2.8"}})
	p.open("/servers/"+vm+"?zone="+zone, "server")
	flow := p.role("form", "From another server")
	if _, err := roleIn(flow, "combobox", "From server").SelectOption(playwright.SelectOptionValues{
		Labels: &[]string{"explain-peer (group “Default security group”)"}}); err != nil {
		t.Fatalf("choose the sender: %v", err)
	}
	if err := roleIn(flow, "textbox", "Destination port").Fill("22"); err != nil {
		t.Fatal(err)
	}
	p.click(roleIn(flow, "button", "Test packet from server"), "Test packet from server")
	p.visible(p.main().GetByText("Accepted: it leaves explain-peer and comes into explain-vm.", playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)}),
		"the answer for a packet between two servers")
	if err := expect.Locator(p.main().GetByTestId("trace")).ToHaveCount(2); err != nil {
		t.Errorf("traces: %v", err)
	}
	p.see("server-tester")

	// The list counts the group's findings: the accept of SSH from
	// anywhere, now rule 2, is broad, and in conflict with the drop
	// before it.
	p.open("/security-groups?zone="+zone, "list")
	if got := p.cellTexts(p.groupRow(g.Name)); got[len(got)-1] != "2 findings" {
		t.Errorf("findings of %s in the list = %q, want 2 findings", g.Name, got[len(got)-1])
	}
}

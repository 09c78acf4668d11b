package store

import "strings"

// A FieldCase is an input the store refuses, with the field its error
// names. Values are text, as a console form or a query string carries
// them, and change one valid input of kind Input (the rest of it valid):
//
//	group:        CreateGroup        server: CreateServer
//	group-update: UpdateGroup        token:  CreateToken
//	rule:         CreateRule         user:   CreateUser
//	move:         MoveRule           login:  Authenticate
//	list:         a list's paging    add-server: AddServer
//	grant:        CreateGrant        host:       CreateHost
//	confirm:      ParseConfirmWithin (the API's X-Rampart-Confirm-Within, the console's confirm_within)
//	compare:      CompareVersions    rules-text: ParseRulesText (the field "rules" holds the text)
//	logs:         LogEntries (the query of a group's packet log)
//
// Tests of every layer take their cases from FieldCases, so that a new
// check is covered everywhere once its case is added here; a store test
// fails when a field the store can name has no case.
type FieldCase struct {
	Input  string
	Field  string
	Values map[string]string
	// Setup names what must exist first: "baremetal" (a BareMetal server
	// in the group) or "local" (a server that is the local host).
	Setup string
}

// FieldCases lists at least one refused value for every field the store
// checks.
var FieldCases = []FieldCase{
	{Input: "group", Field: "name", Values: map[string]string{"name": ""}},
	{Input: "group", Field: "name", Values: map[string]string{"name": strings.Repeat("n", MaxNameLength+1)}},
	{Input: "group", Field: "name", Values: map[string]string{"name": "web\x1b[31m"}},
	{Input: "group", Field: "description", Values: map[string]string{"description": strings.Repeat("d", MaxDescriptionLength+1)}},
	{Input: "group", Field: "description", Values: map[string]string{"description": "admin\u202egpj.exe"}},
	{Input: "group", Field: "tags", Values: map[string]string{"tags": "a\x00b"}},
	{Input: "group", Field: "inbound_default_policy", Values: map[string]string{"inbound_default_policy": "reject"}},
	{Input: "group", Field: "outbound_default_policy", Values: map[string]string{"outbound_default_policy": "reject"}},
	{Input: "group", Field: "servers", Values: map[string]string{"servers": "00000000-0000-4000-8000-000000000000"}},
	{Input: "group", Field: "zone", Values: map[string]string{"zone": "xx-nowhere-1"}},
	{Input: "group-update", Field: "name", Values: map[string]string{"name": " "}},
	{Input: "group-update", Field: "stateful", Values: map[string]string{"stateful": "on"}, Setup: "baremetal"},
	{Input: "group-update", Field: "organization_default", Values: map[string]string{"organization_default": "false"}},

	{Input: "rule", Field: "direction", Values: map[string]string{"direction": "sideways"}},
	{Input: "rule", Field: "action", Values: map[string]string{"action": "reject"}},
	{Input: "rule", Field: "protocol", Values: map[string]string{"protocol": "SCTP"}},
	{Input: "rule", Field: "ip_range", Values: map[string]string{"ip_range": ""}},
	{Input: "rule", Field: "ip_range", Values: map[string]string{"ip_range": "10.0.0.0/33"}},
	{Input: "rule", Field: "ip_set_id", Values: map[string]string{"ip_range": "", "ip_set_id": "office"}},
	{Input: "rule", Field: "ip_set_id", Values: map[string]string{"ip_range": "", "ip_set_id": "00000000-0000-4000-8000-000000000000"}},
	{Input: "rule", Field: "remote_security_group_id", Values: map[string]string{"ip_range": "", "remote_security_group_id": "00000000-0000-4000-8000-000000000000"}},
	{Input: "rule", Field: "remote_security_group_id", Values: map[string]string{"ip_range": "", "remote_security_group_id": "web"}},
	{Input: "rule", Field: "dest_ip_range", Values: map[string]string{"dest_ip_range": "nope"}},
	{Input: "rule", Field: "dest_ip_range", Values: map[string]string{"ip_range": "10.0.0.0/8", "dest_ip_range": "2001:db8::1"}},
	{Input: "rule", Field: "dest_port_from", Values: map[string]string{"dest_port_from": "70000"}},
	{Input: "rule", Field: "dest_port_from", Values: map[string]string{"dest_port_from": "twenty-two"}},
	{Input: "rule", Field: "dest_port_from", Values: map[string]string{"protocol": "ICMP", "dest_port_from": "22"}},
	{Input: "rule", Field: "dest_port_from", Values: map[string]string{"dest_port_to": "80"}},
	{Input: "rule", Field: "dest_port_to", Values: map[string]string{"dest_port_from": "90", "dest_port_to": "80"}},
	{Input: "rule", Field: "dest_port_to", Values: map[string]string{"dest_port_from": "1", "dest_port_to": "65536"}},
	{Input: "rule", Field: "position", Values: map[string]string{"position": "-1"}},
	{Input: "rule", Field: "description", Values: map[string]string{"description": strings.Repeat("d", MaxDescriptionLength+1)}},
	{Input: "rule", Field: "description", Values: map[string]string{"description": "ssh\x1b[2J"}},
	{Input: "rules-text", Field: "line 1", Values: map[string]string{"rules": "inbound accept TCP port 70000 from 0.0.0.0/0"}},
	{Input: "rules-text", Field: "line 2", Values: map[string]string{"rules": "# a comment\ninbound accept TCP from nowhere"}},
	{Input: "confirm", Field: "confirm_within", Values: map[string]string{"confirm_within": "0"}},
	{Input: "confirm", Field: "confirm_within", Values: map[string]string{"confirm_within": "3601"}},
	{Input: "compare", Field: "against", Values: map[string]string{"against": "-1"}},
	{Input: "move", Field: "position", Values: map[string]string{"position": "99"}},
	{Input: "logs", Field: "since", Values: map[string]string{"since": "yesterday"}},
	{Input: "logs", Field: "verdict", Values: map[string]string{"verdict": "reject"}},
	{Input: "logs", Field: "ip", Values: map[string]string{"ip": "203.0.113.300"}},

	{Input: "server", Field: "name", Values: map[string]string{"name": ""}},
	{Input: "server", Field: "tags", Values: map[string]string{"tags": "a,b"}},
	{Input: "server", Field: "type", Values: map[string]string{"type": "vm"}},
	{Input: "server", Field: "interface", Values: map[string]string{"interface": `ta"p0`}},
	{Input: "server", Field: "interface", Values: map[string]string{"local": "on", "interface": "tap0"}},
	{Input: "server", Field: "addresses", Values: map[string]string{"addresses": "192.0.2.300"}},
	{Input: "server", Field: "security_group", Values: map[string]string{"security_group": "00000000-0000-4000-8000-000000000000"}},
	{Input: "server", Field: "security_group", Values: map[string]string{"type": "baremetal", "security_group": ""}},
	{Input: "server", Field: "zone", Values: map[string]string{"zone": "xx-nowhere-1"}},
	{Input: "add-server", Field: "server_id", Values: map[string]string{"server_id": ""}},
	{Input: "add-server", Field: "server_id", Values: map[string]string{"server_id": "00000000-0000-4000-8000-000000000000"}},
	{Input: "server", Field: "host", Values: map[string]string{"host": "nowhere"}},
	{Input: "ip-set", Field: "entries", Values: map[string]string{"entries": "10.0.0.0/33"}},
	{Input: "ip-set", Field: "add", Values: map[string]string{"add": "nope"}},
	{Input: "ip-set", Field: "remove", Values: map[string]string{"remove": "::1/129"}},
	{Input: "grant", Field: "interfaces", Values: map[string]string{"interfaces": "tap 0*"}},
	{Input: "ip-set", Field: "entries", Values: map[string]string{"entries": "10.0.0.0/33"}},
	{Input: "ip-set", Field: "add", Values: map[string]string{"add": "nope"}},
	{Input: "ip-set", Field: "remove", Values: map[string]string{"remove": "::1/129"}},
	{Input: "grant", Field: "interfaces", Values: map[string]string{"interfaces": "", "local": ""}},
	{Input: "host", Field: "name", Values: map[string]string{"name": "db host!"}},
	{Input: "server", Field: "local", Values: map[string]string{"local": "on", "interface": ""}, Setup: "local"},

	{Input: "token", Field: "description", Values: map[string]string{"description": strings.Repeat("t", MaxTokenDescription+1)}},
	{Input: "token", Field: "description", Values: map[string]string{"description": "ci\x07"}},
	{Input: "user", Field: "email", Values: map[string]string{"email": "not an address"}},
	{Input: "user", Field: "password", Values: map[string]string{"password": "short"}},
	{Input: "user", Field: "org", Values: map[string]string{"org": ""}},
	{Input: "login", Field: "email", Values: map[string]string{"email": ""}},
	{Input: "login", Field: "password", Values: map[string]string{"password": ""}},
	{Input: "list", Field: "page", Values: map[string]string{"page": "9223372036854775807"}},
	{Input: "list", Field: "per_page", Values: map[string]string{"per_page": "101"}},
}

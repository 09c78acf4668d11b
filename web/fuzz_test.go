package web_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// FuzzAPIBodies sends arbitrary bodies to every API route that decodes
// one, Scaleway's and the legacy one: the answer is never a server error,
// always JSON.
func FuzzAPIBodies(f *testing.F) {
	env := newTestEnv(f)
	ctx := context.Background()
	g, err := env.db.CreateGroup(ctx, env.org.ID, "fr-par-1", store.GroupInput{Name: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	r, err := env.db.CreateRule(ctx, env.org.ID, "fr-par-1", g.ID, store.RuleInput{IPRange: "0.0.0.0/0"})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := env.db.CreateServer(ctx, env.org.ID, "fr-par-1", store.ServerInput{Name: "vm", SecurityGroupID: g.ID})
	if err != nil {
		f.Fatal(err)
	}
	base := env.url + "/instance/v1/zones/fr-par-1"
	routes := []struct{ method, url string }{
		{"POST", base + "/security_groups"},
		{"PATCH", base + "/security_groups/" + g.ID},
		{"PUT", base + "/security_groups/" + g.ID},
		{"POST", base + "/security_groups/" + g.ID + "/rules"},
		{"PUT", base + "/security_groups/" + g.ID + "/rules"},
		{"PATCH", base + "/security_groups/" + g.ID + "/rules/" + r.ID},
		{"POST", base + "/servers"},
		{"PATCH", base + "/servers/" + srv.ID},
		{"POST", env.url + "/security_groups"},
		{"PUT", env.url + "/security_groups/" + g.ID},
		{"POST", base + "/security_groups/" + g.ID + "/evaluate"},
		{"POST", base + "/servers/" + srv.ID + "/evaluate"},
	}
	seeds := []string{
		`{"name":"x","stateful":true,"inbound_default_policy":"drop"}`,
		`{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"8.8.8.8/32","dest_port_from":1,"dest_port_to":1024,"position":1}`,
		`{"rules":[{"id":null,"action":"accept","protocol":"TCP","direction":"inbound","ip_range":"","dest_port_from":22,"dest_port_to":null,"position":0,"editable":null,"zone":null}]}`,
		`{"security_group":{"id":"` + g.ID + `"}}`, `{"security_group":"` + g.ID + `"}`,
		`{"dest_port_from":0,"dest_port_to":0}`, `{"tags":["a","b"]}`, `null`, `[]`, `{"position":-3}`,
		`{"name":` + strings.Repeat("[", 50), `{"stateful":"yes"}`,
		`{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","local_ip":"192.0.2.1","port":22,"state":"new"}`,
		`{"from_server":"` + srv.ID + `","protocol":"ICMP","ip":"2001:db8::1","state":"established"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		rt := routes[int(route)%len(routes)]
		req, _ := http.NewRequest(rt.method, rt.url, strings.NewReader(body))
		req.Header.Set("X-Auth-Token", env.secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.url, body, resp.StatusCode, raw)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: Content-Type %q", rt.method, rt.url, ct)
		}
	})
}

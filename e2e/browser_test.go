package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/playwright-community/playwright-go"
)

// expect is Playwright's retrying assertions; 10 s covers a sync state
// that polls every 2 s on a busy two-core machine.
var expect = playwright.NewPlaywrightAssertions(10000)

// tab is one test's browser page in a fresh context. Every page a test
// looks at goes through see, which checks it with axe-core and keeps a
// full-page screenshot; on failure the page's HTML and the browser's
// console log are kept beside the screenshots.
type tab struct {
	playwright.Page
	t   *testing.T
	dir string

	mu      sync.Mutex
	shots   int
	console []string
	errors  []string // uncaught exceptions and Content-Security-Policy refusals
	dialogs []string
}

// newTab opens a page on srv in a fresh context of the suite's browser.
func newTab(t *testing.T, srv *server) *tab {
	t.Helper()
	needBrowser(t)
	return newTabIn(t, srv, suite.browser)
}

// newTabIn opens a page on srv in a fresh context of browser.
func newTabIn(t *testing.T, srv *server, browser playwright.Browser) *tab {
	t.Helper()
	ctx, err := browser.NewContext(playwright.BrowserNewContextOptions{
		BaseURL:  playwright.String(srv.url),
		Viewport: &playwright.Size{Width: 1280, Height: 900},
		Locale:   playwright.String("en-US"),
	})
	if err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	page, err := ctx.NewPage()
	if err != nil {
		t.Fatalf("new page: %v", err)
	}
	page.SetDefaultTimeout(10000)
	p := &tab{Page: page, t: t, dir: artifactDir(t)}
	page.On("console", func(m playwright.ConsoleMessage) {
		p.mu.Lock()
		defer p.mu.Unlock()
		line := fmt.Sprintf("[%s] %s", m.Type(), m.Text())
		p.console = append(p.console, line)
		if strings.Contains(m.Text(), "Content Security Policy") {
			p.errors = append(p.errors, line)
		}
	})
	page.On("pageerror", func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.console = append(p.console, "[pageerror] "+err.Error())
		p.errors = append(p.errors, err.Error())
	})
	// A person confirms what they asked for (data-confirm on destroying
	// forms); the message is kept.
	page.On("dialog", func(d playwright.Dialog) {
		p.mu.Lock()
		p.dialogs = append(p.dialogs, d.Message())
		p.console = append(p.console, "[dialog] "+d.Message())
		p.mu.Unlock()
		_ = d.Accept()
	})
	t.Cleanup(func() {
		p.mu.Lock()
		errs := append([]string(nil), p.errors...)
		p.mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("the browser reported errors:\n  %s", strings.Join(errs, "\n  "))
		}
		if t.Failed() {
			p.keepFailure()
		}
		_ = ctx.Close()
	})
	return p
}

// confirmed reports whether the page asked the person to confirm a
// message matching re.
func (p *tab) confirmed(re *regexp.Regexp) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.dialogs {
		if re.MatchString(m) {
			return true
		}
	}
	return false
}

// keepFailure saves the page's HTML, a last screenshot and the console log.
func (p *tab) keepFailure() {
	if html, err := p.Content(); err == nil {
		_ = os.WriteFile(filepath.Join(p.dir, "failure.html"), []byte(html), 0o644)
	}
	_, _ = p.Screenshot(shotOptions(filepath.Join(p.dir, "failure.png")))
	p.mu.Lock()
	log := strings.Join(p.console, "\n") + "\n"
	p.mu.Unlock()
	_ = os.WriteFile(filepath.Join(p.dir, "console.log"), []byte(log), 0o644)
	p.t.Logf("artifacts of the failure in e2e/%s (page URL %s)", p.dir, p.URL())
}

// open loads path and looks at it.
func (p *tab) open(path, name string) {
	p.t.Helper()
	resp, err := p.Goto(path)
	if err != nil {
		p.t.Fatalf("open %s: %v", path, err)
	}
	if resp != nil && resp.Status() >= 400 {
		p.see(name)
		p.t.Fatalf("open %s: status %d", path, resp.Status())
	}
	p.see(name)
}

// see waits for the page to settle, checks it with axe-core and saves a
// full-page screenshot as NN-name.png.
func (p *tab) see(name string) {
	p.t.Helper()
	if err := p.WaitForLoadState(playwright.PageWaitForLoadStateOptions{State: playwright.LoadStateLoad}); err != nil {
		p.t.Fatalf("%s: wait for load: %v", name, err)
	}
	p.mu.Lock()
	p.shots++
	file := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.png", p.shots, name))
	p.mu.Unlock()
	if _, err := p.Screenshot(shotOptions(file)); err != nil {
		p.t.Errorf("%s: screenshot: %v", name, err)
	}
	p.checkAccessibility(name)
}

// shotOptions takes a full-page screenshot into file. The caret is left
// alone: hiding it leaves style="" on the inputs, which htmx copies when it
// settles a swap, and the console's CSP (no inline style) then reports a
// violation that no person would cause.
func shotOptions(file string) playwright.PageScreenshotOptions {
	return playwright.PageScreenshotOptions{
		Path: playwright.String(file), FullPage: playwright.Bool(true), Caret: playwright.ScreenshotCaretInitial,
	}
}

// axeViolation is one failed axe-core rule.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// checkAccessibility runs axe-core on the page and fails the test on any
// serious or critical violation. axe is evaluated through the DevTools
// protocol, which the console's Content-Security-Policy (scripts from
// 'self' only) does not apply to, so the page is checked as served.
func (p *tab) checkAccessibility(name string) {
	p.t.Helper()
	loaded, err := p.Evaluate(`() => typeof window.axe === "object"`)
	if err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	if loaded != true {
		if _, err := p.Evaluate(suite.axeSource); err != nil {
			p.t.Fatalf("%s: load axe-core: %v", name, err)
		}
	}
	raw, err := p.Evaluate(`async () => {
		const r = await axe.run(document, {resultTypes: ["violations"]});
		return JSON.stringify(r.violations
			.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help,
				targets: v.nodes.slice(0, 8).map(n => n.target.join(" ") + (n.failureSummary ? " — " + n.failureSummary.replace(/\s+/g, " ") : ""))})));
	}`)
	if err != nil {
		p.t.Fatalf("%s: run axe-core: %v", name, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw.(string)), &vs); err != nil {
		p.t.Fatalf("%s: axe-core answered %v: %v", name, raw, err)
	}
	if len(vs) == 0 {
		return
	}
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\n  %s (%s): %s", v.ID, v.Impact, v.Help)
		for _, t := range v.Targets {
			fmt.Fprintf(&b, "\n    %s", t)
		}
	}
	p.t.Errorf("page %q (%s): axe-core found %d serious or critical violation(s):%s", name, p.URL(), len(vs), b.String())
}

// Locators, the way a person finds things: by role and accessible name,
// by label, by visible text.

// role finds an element by role and accessible name: a string matches
// exactly, a *regexp.Regexp as a pattern, nil any name.
func (p *tab) role(role string, name any) playwright.Locator {
	o := playwright.PageGetByRoleOptions{}
	if name != nil {
		o.Name = name
		_, exact := name.(string)
		o.Exact = playwright.Bool(exact)
	}
	return p.GetByRole(playwright.AriaRole(role), o)
}

// roleIn is role within l.
func roleIn(l playwright.Locator, role string, name any) playwright.Locator {
	o := playwright.LocatorGetByRoleOptions{}
	if name != nil {
		o.Name = name
		_, exact := name.(string)
		o.Exact = playwright.Bool(exact)
	}
	return l.GetByRole(playwright.AriaRole(role), o)
}

func (p *tab) button(name any) playwright.Locator { return p.role("button", name) }
func (p *tab) link(name any) playwright.Locator   { return p.role("link", name) }

// main is the page's main landmark: the zone selector above it has a
// "Zone" label too.
func (p *tab) main() playwright.Locator { return p.GetByRole(*playwright.AriaRoleMain) }

func (p *tab) label(text string) playwright.Locator {
	return p.main().GetByLabel(text, playwright.LocatorGetByLabelOptions{Exact: playwright.Bool(true)})
}

func (p *tab) text(text any) playwright.Locator { return p.GetByText(text) }

// click clicks l, failing the test with what was being done.
func (p *tab) click(l playwright.Locator, what string) {
	p.t.Helper()
	if err := l.Click(); err != nil {
		p.t.Fatalf("click %s: %v", what, err)
	}
}

// fill types value into the field labelled label.
func (p *tab) fill(label, value string) {
	p.t.Helper()
	if err := p.label(label).Fill(value); err != nil {
		p.t.Fatalf("fill %q: %v", label, err)
	}
}

// choose selects the option shown as option in the select labelled label.
func (p *tab) choose(label, option string) {
	p.t.Helper()
	if _, err := p.label(label).SelectOption(playwright.SelectOptionValues{Labels: &[]string{option}}); err != nil {
		p.t.Fatalf("choose %q in %q: %v", option, label, err)
	}
}

// chooseLike selects the option of the select labelled label whose
// text, spaces collapsed, matches re.
func (p *tab) chooseLike(label string, re *regexp.Regexp) {
	p.t.Helper()
	texts, err := roleIn(p.label(label), "option", nil).AllTextContents()
	if err != nil {
		p.t.Fatalf("options of %q: %v", label, err)
	}
	for _, text := range texts {
		if re.MatchString(strings.Join(strings.Fields(text), " ")) {
			if _, err := p.label(label).SelectOption(playwright.SelectOptionValues{Labels: &[]string{strings.TrimSpace(text)}}); err != nil {
				p.t.Fatalf("choose %q in %q: %v", text, label, err)
			}
			return
		}
	}
	p.t.Fatalf("no option of %q matches %s among %q", label, re, texts)
}

// check sets the checkbox labelled label.
func (p *tab) check(label string, on bool) {
	p.t.Helper()
	if err := p.label(label).SetChecked(on); err != nil {
		p.t.Fatalf("set %q to %v: %v", label, on, err)
	}
}

// visible fails the test unless l becomes visible.
func (p *tab) visible(l playwright.Locator, what string) {
	p.t.Helper()
	if err := expect.Locator(l).ToBeVisible(); err != nil {
		p.t.Fatalf("%s is not visible: %v", what, err)
	}
}

// signIn signs a in through the login form and waits for the list.
func (p *tab) signIn(a account) {
	p.t.Helper()
	p.open("/login", "sign-in")
	p.fill("Email", a.Email)
	p.fill("Password", a.Password)
	p.click(p.button("Sign in"), "Sign in")
	if err := expect.Page(p.Page).ToHaveURL(regexp.MustCompile(`/security-groups`)); err != nil {
		p.t.Fatalf("after signing in: %v", err)
	}
}

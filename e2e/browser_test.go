package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
//
// Whatever the browser reports as going wrong on any page of the context
// fails the test when it ends (see problemsAtEnd): console messages of
// type error, uncaught exceptions, and Content-Security-Policy violations
// as the page's securitypolicyviolation events report them. The only
// console errors a test may cause on purpose are the "Failed to load
// resource" lines of the 4xx answers it provokes and declares with
// expectFailedLoad.
type tab struct {
	playwright.Page
	t   *testing.T
	dir string

	mu       sync.Mutex
	shots    int
	console  []string     // every console line, kept on failure
	problems []string     // what fails the test when it ends
	expected []failedLoad // 4xx answers the test provokes, each used once
	dialogs  []string
}

// failedLoad is a "Failed to load resource" console error a test expects:
// the browser logs one for every 4xx answer, and the console answers 4xx
// on purpose (a form with errors is 422, a missing group 404).
type failedLoad struct {
	status int
	path   string
}

// violationBinding is the function the pages call with each CSP
// violation; violationScript installs the listener in every document
// before the page's own scripts run. Playwright evaluates both through the
// DevTools protocol, outside the page's CSP, so they add no violation of
// their own. The listener keeps the promises of the calls still in flight,
// which flushProblems awaits: the Go side of a binding runs on its own
// goroutine, and a violation must be recorded before the test is judged.
const (
	violationBinding = "__rampartCSPViolation"
	violationScript  = `(() => {
	const pending = new Set();
	const describe = (el) => el && el.cloneNode ? el.cloneNode(false).outerHTML.slice(0, 300) : String(el);
	window.addEventListener("securitypolicyviolation", (e) => {
		const p = window.` + violationBinding + `({
			directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample,
			source: e.sourceFile, line: e.lineNumber, column: e.columnNumber, element: describe(e.target),
		});
		pending.add(p);
		p.finally(() => pending.delete(p));
	}, true);
	Object.defineProperty(window, "__rampartViolationsReported", {value: () => Promise.allSettled([...pending])});
})()`
)

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
	p := &tab{t: t, dir: artifactDir(t)}
	// Listened to on the context, before its first page exists, so that
	// nothing a page reports is missed, whichever page it is.
	ctx.OnConsole(p.onConsole)
	ctx.OnWebError(func(e playwright.WebError) {
		p.report("[pageerror] "+e.Error().Error(), "uncaught exception: "+e.Error().Error())
	})
	err = ctx.ExposeBinding(violationBinding, func(_ *playwright.BindingSource, args ...any) any {
		raw, _ := json.Marshal(args)
		p.report("[csp-violation] "+string(raw), "CSP violation: "+string(raw))
		return nil
	})
	if err != nil {
		t.Fatalf("expose %s: %v", violationBinding, err)
	}
	if err := ctx.AddInitScript(playwright.Script{Content: playwright.String(violationScript)}); err != nil {
		t.Fatalf("add the CSP violation listener: %v", err)
	}
	// A person confirms what they asked for (data-confirm on destroying
	// forms); the message is kept.
	ctx.OnDialog(func(d playwright.Dialog) {
		p.mu.Lock()
		p.dialogs = append(p.dialogs, d.Message())
		p.console = append(p.console, "[dialog] "+d.Message())
		p.mu.Unlock()
		_ = d.Accept()
	})
	page, err := ctx.NewPage()
	if err != nil {
		t.Fatalf("new page: %v", err)
	}
	page.SetDefaultTimeout(10000)
	p.Page = page
	t.Cleanup(func() {
		if problems := p.problemsAtEnd(); len(problems) > 0 {
			t.Errorf("the browser reported %d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
		}
		if t.Failed() {
			p.keepFailure()
		}
		_ = ctx.Close()
	})
	return p
}

// onConsole keeps every console line, and counts the errors as problems
// unless the test declared them with expectFailedLoad.
func (p *tab) onConsole(m playwright.ConsoleMessage) {
	loc := m.Location()
	line := fmt.Sprintf("[%s] %s (%s:%d)", m.Type(), m.Text(), loc.URL, loc.LineNumber)
	if m.Type() != "error" {
		p.report(line, "")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.console = append(p.console, line)
	for i, f := range p.expected {
		if f.matches(m.Text(), loc.URL) {
			p.expected = slices.Delete(p.expected, i, i+1)
			return
		}
	}
	p.problems = append(p.problems, "console error: "+m.Text()+" (at "+loc.URL+")")
}

func (f failedLoad) matches(text, rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == f.path &&
		strings.HasPrefix(text, fmt.Sprintf("Failed to load resource: the server responded with a status of %d ", f.status))
}

// report keeps a console line and, if problem is not empty, a problem.
func (p *tab) report(line, problem string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.console = append(p.console, line)
	if problem != "" {
		p.problems = append(p.problems, problem)
	}
}

// expectFailedLoad declares that the next answer from path will be status
// (a 4xx the test provokes): the console error the browser logs for it is
// not a problem. Any other one is.
func (p *tab) expectFailedLoad(status int, path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expected = append(p.expected, failedLoad{status, path})
}

// flushProblems lets the page finish what it is doing (an htmx request,
// swap or settle still running) and waits until every CSP violation it
// reported so far has reached the test.
func (p *tab) flushProblems() {
	_, _ = p.Evaluate(`async () => {
		const busy = () => document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling");
		for (let i = 0; i < 100 && busy(); i++) await new Promise(r => setTimeout(r, 20));
		await new Promise(r => requestAnimationFrame(() => setTimeout(r)));
		if (window.__rampartViolationsReported) await window.__rampartViolationsReported();
	}`)
}

// takeProblems returns the problems reported so far and forgets them.
func (p *tab) takeProblems() []string {
	p.flushProblems()
	p.mu.Lock()
	defer p.mu.Unlock()
	problems := p.problems
	p.problems = nil
	return problems
}

// problemsAtEnd is what the browser reported during the test.
func (p *tab) problemsAtEnd() []string {
	if p.Page == nil {
		return nil
	}
	return p.takeProblems()
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

// shotOptions takes a full-page screenshot into file, the caret hidden
// (Playwright's default) so that screenshots do not depend on its blink.
// Hiding it sets and then clears caret-color on every input through the
// CSSOM, which leaves style="" behind, as extensions do on a person's
// browser: the console must cope with that without a CSP violation (see
// htmxConfig in views/layout.templ).
func shotOptions(file string) playwright.PageScreenshotOptions {
	return playwright.PageScreenshotOptions{Path: playwright.String(file), FullPage: playwright.Bool(true)}
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

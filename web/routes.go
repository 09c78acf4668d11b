package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// registerRoutes registers every route of the server: the one place to
// look for what answers a path. Middleware is set per route (or per API
// group): a group at the root would also catch the console's unknown
// paths, and the console's unknown API paths.
func (s *Server) registerRoutes() {
	e, con := s.e, s.console
	e.GET("/healthz", s.handleHealthz)
	e.GET("/metrics", echo.WrapHandler(s.metric.handler()))

	// The Instance API v1, under /instance/v1/zones/:zone.
	z := e.Group("/instance/v1/zones/:zone", s.requireToken, s.confirmWithin)
	z.GET("/security_groups", s.handleGroupList)
	z.POST("/security_groups", s.handleGroupCreate)
	// Static segments win over parameters in Echo's router, so "default"
	// is never taken for a group ID.
	z.GET("/security_groups/default/rules", s.handleDefaultRules)
	z.GET("/security_groups/:id", s.handleGroupGet)
	z.PATCH("/security_groups/:id", s.handleGroupPatch)
	z.PUT("/security_groups/:id", s.handleGroupPut)
	z.DELETE("/security_groups/:id", s.handleGroupDelete)
	z.GET("/security_groups/:id/events", s.handleGroupEvents)
	z.GET("/security_groups/:id/ruleset", s.handleGroupRuleset)
	z.POST("/security_groups/:id/evaluate", s.handleGroupEvaluate)
	z.GET("/security_groups/:id/analysis", s.handleGroupAnalysis)
	z.GET("/security_groups/:id/rules", s.handleRuleList)
	z.POST("/security_groups/:id/rules", s.handleRuleCreate)
	z.PUT("/security_groups/:id/rules", s.handleRuleSetAll)
	z.GET("/security_groups/:id/rules/:rule", s.handleRuleGet)
	z.PATCH("/security_groups/:id/rules/:rule", s.handleRulePatch)
	z.DELETE("/security_groups/:id/rules/:rule", s.handleRuleDelete)
	z.GET("/security_groups/:id/versions", s.handleVersionList)
	z.GET("/security_groups/:id/versions/:n", s.handleVersionGet)
	z.GET("/security_groups/:id/versions/:n/diff", s.handleVersionDiff)
	z.POST("/security_groups/:id/versions/:n/revert", s.handleVersionRevert)
	z.POST("/security_groups/:id/confirm", s.handleGroupConfirm)
	z.GET("/security_groups/:id/logs", s.handleGroupLogs)
	z.POST("/security_groups/:id/reset_counters", s.handleGroupResetCounters)
	z.GET("/servers", s.handleServerList)
	z.POST("/servers", s.handleServerCreate)
	z.GET("/servers/:server", s.handleServerGet)
	z.PATCH("/servers/:server", s.handleServerPatch)
	z.DELETE("/servers/:server", s.handleServerDelete)
	z.GET("/ip_sets", s.handleIPSetList)
	z.POST("/ip_sets", s.handleIPSetCreate)
	z.GET("/ip_sets/:set", s.handleIPSetGet)
	z.PATCH("/ip_sets/:set", s.handleIPSetPatch)
	z.DELETE("/ip_sets/:set", s.handleIPSetDelete)
	z.POST("/servers/:server/evaluate", s.handleServerEvaluate)

	// The legacy API of the original documentation, in the default zone.
	legacy := []echo.MiddlewareFunc{s.requireToken, s.legacyZone, s.confirmWithin}
	e.GET("/organizations", s.handleOrganizations, legacy...)
	e.GET("/security_groups", s.handleGroupList, legacy...)
	e.POST("/security_groups", s.handleLegacyGroupCreate, legacy...)
	e.GET("/security_groups/:id", s.handleGroupGet, legacy...)
	e.PUT("/security_groups/:id", s.handleGroupPatch, legacy...)
	e.PATCH("/security_groups/:id", s.handleGroupPatch, legacy...)
	e.DELETE("/security_groups/:id", s.handleGroupDelete, legacy...)

	// The console.
	e.GET("/static/*", con.handleStatic, middleware.Gzip())
	public := []echo.MiddlewareFunc{consoleBodyLimit, con.securityHeaders, con.loadSession, con.csrf}
	user := append(public[:len(public):len(public)], con.requireUser)
	e.GET("/login", con.handleLoginPage, public...)
	e.POST("/login", con.handleLoginForm, public...)
	e.POST("/logout", con.handleLogoutForm, public...)
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/security-groups") }, public...)

	e.GET("/security-groups", con.handleGroupsPage, user...)
	e.GET("/security-groups/new", con.handleGroupNewPage, user...)
	e.POST("/security-groups/new", con.handleGroupNewForm, user...)
	e.POST("/security-groups", con.handleGroupNewForm, user...)
	e.GET("/security-groups/:id", con.handleGroupPage, user...)
	e.POST("/security-groups/:id", con.handleGroupOverviewForm, user...)
	e.GET("/security-groups/states", con.handleGroupStatesPartial, user...)
	e.GET("/security-groups/:id/state", con.handleGroupStatePartial, user...)
	e.GET("/security-groups/:id/nft", con.handleGroupNFTPartial, user...)
	e.GET("/security-groups/:id/counters", con.handleCountersPartial, user...)
	e.POST("/security-groups/:id/counters/reset", con.handleCountersResetForm, user...)
	e.GET("/security-groups/:id/log", con.handleLogPartial, user...)
	e.POST("/security-groups/:id/default", con.handleGroupDefaultForm, user...)
	e.POST("/security-groups/:id/delete", con.handleGroupDeleteForm, user...)
	e.POST("/security-groups/:id/servers", con.handleGroupAddServerForm, user...)
	e.POST("/security-groups/:id/servers/:server/unlink", con.handleGroupUnlinkForm, user...)
	e.GET("/security-groups/:id/rules", con.handleRulesPartial, user...)
	e.POST("/security-groups/:id/rules", con.handleRuleAddForm, user...)
	e.GET("/security-groups/:id/rules/:rule/edit", con.handleRuleEditPage, user...)
	e.POST("/security-groups/:id/rules/:rule", con.handleRuleEditForm, user...)
	e.POST("/security-groups/:id/rules/:rule/move", con.handleRuleMoveForm, user...)
	e.POST("/security-groups/:id/rules/:rule/delete", con.handleRuleDeleteForm, user...)
	e.POST("/security-groups/:id/evaluate", con.handleGroupEvaluateForm, user...)
	e.GET("/security-groups/:id/versions/:n", con.handleVersionPage, user...)
	e.POST("/security-groups/:id/versions/:n/revert", con.handleVersionRevertForm, user...)
	e.POST("/security-groups/:id/confirm", con.handleGroupConfirmForm, user...)
	e.GET("/security-groups/:id/pending", con.handlePendingPartial, user...)
	e.POST("/security-groups/:id/draft", con.handleDraftStartForm, user...)
	e.GET("/security-groups/:id/draft", con.handleDraftPage, user...)
	e.POST("/security-groups/:id/draft/rules", con.handleDraftRuleAddForm, user...)
	e.GET("/security-groups/:id/draft/rules/:rule/edit", con.handleDraftRuleEditPage, user...)
	e.POST("/security-groups/:id/draft/rules/:rule", con.handleDraftRuleEditForm, user...)
	e.POST("/security-groups/:id/draft/rules/:rule/move", con.handleDraftRuleMoveForm, user...)
	e.POST("/security-groups/:id/draft/rules/:rule/delete", con.handleDraftRuleDeleteForm, user...)
	e.GET("/security-groups/:id/draft/text", con.handleDraftTextPage, user...)
	e.POST("/security-groups/:id/draft/text", con.handleDraftTextForm, user...)
	e.POST("/security-groups/:id/draft/apply", con.handleDraftApplyForm, user...)
	e.POST("/security-groups/:id/draft/discard", con.handleDraftDiscardForm, user...)

	e.GET("/servers", con.handleServersPage, user...)
	e.POST("/servers", con.handleServerRegisterForm, user...)
	e.GET("/servers/:server", con.handleServerPage, user...)
	e.POST("/servers/:server", con.handleServerEditForm, user...)
	e.POST("/servers/:server/delete", con.handleServerRemoveForm, user...)
	e.POST("/servers/:server/evaluate", con.handleServerEvaluateForm, user...)

	e.GET("/ip-sets", con.handleIPSetsPage, user...)
	e.POST("/ip-sets", con.handleIPSetCreateForm, user...)
	e.GET("/ip-sets/:set", con.handleIPSetPage, user...)
	e.POST("/ip-sets/:set", con.handleIPSetEditForm, user...)
	e.POST("/ip-sets/:set/delete", con.handleIPSetDeleteForm, user...)

	e.GET("/tokens", con.handleTokensPage, user...)
	e.POST("/tokens", con.handleTokenGenerateForm, user...)
	e.POST("/tokens/:key/revoke", con.handleTokenRevokeForm, user...)

	// The Operator area: the whole install, for operators only.
	op := append(user[:len(user):len(user)], con.requireOperator)
	e.GET("/operator/hosts", con.handleHostsPage, op...)
	e.POST("/operator/hosts", con.handleHostAddForm, op...)
	e.POST("/operator/hosts/:name/remove", con.handleHostRemoveForm, op...)
	e.POST("/operator/hosts/:name/default", con.handleHostDefaultForm, op...)
	e.GET("/operator/organizations", con.handleOrganizationsPage, op...)
	e.POST("/operator/organizations", con.handleOrganizationAddForm, op...)
	e.GET("/operator/users", con.handleUsersPage, op...)
	e.POST("/operator/users", con.handleUserAddForm, op...)
	e.GET("/operator/grants", con.handleGrantsPage, op...)
	e.POST("/operator/grants", con.handleGrantAddForm, op...)
	e.POST("/operator/grants/:id/delete", con.handleGrantDeleteForm, op...)
}

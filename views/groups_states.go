package views

import (
	"strconv"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// badgeMode is how a state badge stays current.
type badgeMode int

const (
	badgePolls   badgeMode = iota // it polls its group's state (a group's page)
	badgeListed                   // the list's poll refreshes it
	badgeSwapped                  // the list's poll's answer, swapped in by ID
)

// MaxPendingStates bounds the IDs a list's poll carries: past it, the poll
// asks for every badge ("*").
const MaxPendingStates = 100

// StatesSince is the newest generation of the groups rows show: a group
// changed after the list was read has a newer one.
func StatesSince(rows []GroupRow) string {
	var since int64
	for _, r := range rows {
		since = max(since, r.Group.Generation)
	}
	return strconv.FormatInt(since, 10)
}

// StatesPending lists, comma-separated, the groups of rows not yet in
// sync, whose badges the next poll must send again even if they did not
// change; "*" when there are more than MaxPendingStates.
func StatesPending(rows []GroupRow) string {
	var ids []string
	for _, r := range rows {
		if r.State != store.Available {
			ids = append(ids, r.Group.ID)
		}
	}
	if len(ids) > MaxPendingStates {
		return "*"
	}
	return strings.Join(ids, ",")
}

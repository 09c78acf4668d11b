package views

// ariaInvalid spells aria-invalid out: templ writes a true boolean
// attribute bare, which ARIA reads as "false".
func ariaInvalid(invalid bool) string {
	if invalid {
		return "true"
	}
	return "false"
}

// describedBy is the id of a field's error message, when it has one, for
// the field's aria-describedby.
func describedBy(e FieldErrors, field, id string) string {
	if e.Has(field) {
		return "err-" + id
	}
	return ""
}

// checkDescribedBy links a checkbox to its hint and, when refused, to the
// reason, so that a screen reader announces both.
func checkDescribedBy(id, errMsg string) string {
	if errMsg != "" {
		return id + "-hint " + id + "-error"
	}
	return id + "-hint"
}

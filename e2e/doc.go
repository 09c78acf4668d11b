// Package e2e is Rampart's browser suite: its tests build the rampart
// binary, start it on a free port with a temporary database, and drive
// Debian's Chromium through playwright-go the way a person uses the
// console, checking each page with axe-core. See main_test.go for what the
// suite needs and how it is set up offline (ARCHITECTURE.md, "Tests").
package e2e

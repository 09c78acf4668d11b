package hostview

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"math/big"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// The agents' endpoint, served over TLS 1.3. Every path but PathEnrol
// needs the host's client certificate and names the host, which must be
// the certificate's: a host reads and reports for itself only.
//
//	POST PathEnrol                EnrolRequest → EnrolResponse (no client certificate)
//	GET  ViewPath(id)?generation=N the view stream: one JSON Frame per line (ContentType),
//	                              from the complete view of generation N the agent holds (0: none)
//	POST ReportPath(id)           Report → 204
//	POST ObservationsPath(id)     Observations → 204 (404 from a console older than it)
//	POST CertificatePath(id)      RenewRequest → RenewResponse
//
// Refusals answer an ErrorResponse: 400 a bad body, 401 no certificate,
// or one that is not the current one of an existing host, or a join
// token unknown, used or expired; 403 another host's path or report.
const PathEnrol = "/v1/enrol"

const pathHosts = "/v1/hosts/"

// ContentType is the view stream's: one JSON Frame per line.
const ContentType = "application/x-ndjson"

// HeaderHeartbeat, on the view stream's response, gives in milliseconds how
// often the console sends a heartbeat frame and expects a report.
const HeaderHeartbeat = "Rampart-Heartbeat"

// ViewPath is where host hostID reads its view stream.
func ViewPath(hostID string) string { return pathHosts + url.PathEscape(hostID) + "/view" }

// ReportPath is where host hostID POSTs its Reports.
func ReportPath(hostID string) string { return pathHosts + url.PathEscape(hostID) + "/report" }

// ObservationsPath is where host hostID POSTs its Observations. A console
// from before the packet log answers 404: the agent then keeps to the
// counters of its heartbeat reports, which every console reads.
func ObservationsPath(hostID string) string {
	return pathHosts + url.PathEscape(hostID) + "/observations"
}

// CertificatePath is where host hostID POSTs a RenewRequest for a new
// certificate, with its current one.
func CertificatePath(hostID string) string {
	return pathHosts + url.PathEscape(hostID) + "/certificate"
}

// Frame types.
const (
	FrameView      = "view"      // View: a complete view, replacing whatever the agent held
	FrameDelta     = "delta"     // Delta: changes from the generation the agent holds
	FrameHeartbeat = "heartbeat" // Heartbeat: the console is alive
)

// Frame is one line of the view stream.
type Frame struct {
	Type      string     `json:"type"`
	View      *View      `json:"view,omitempty"`
	Delta     *Delta     `json:"delta,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// Heartbeat says the console is alive, and the generation of the host's
// view it has sent.
type Heartbeat struct {
	Generation int64     `json:"generation"`
	Time       time.Time `json:"time"`
}

// Report is what a host says of itself: after an apply (Groups set), and
// at every heartbeat (Heartbeat true, Groups absent: as last reported).
type Report struct {
	HostID    string `json:"host_id"`
	Version   string `json:"version"`
	Heartbeat bool   `json:"heartbeat,omitempty"`
	// Generation is the store generation of the last view the host's
	// kernel holds in full.
	Generation   int64  `json:"generation"`
	Error        string `json:"error,omitempty"` // why the last apply failed
	DriftRepairs int64  `json:"drift_repairs"`
	// Groups are the host's groups by ID: the generation its kernel holds
	// and why the latest could not be applied.
	Groups map[string]GroupReport `json:"groups,omitempty"`
	// Counters are by group ID, then by rule tag (rule ID, default_in,
	// ...), as enforcer.Reconciler.Counters gives them.
	Counters map[string]map[string]Counter `json:"counters,omitempty"`
}

// GroupReport is one group as a host holds it.
type GroupReport struct {
	Generation int64  `json:"generation"`
	Error      string `json:"error,omitempty"`
}

// Counter is the packet and byte count of one rule.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// NewReport describes what a reconciler holds: its totals and its groups.
func NewReport(hostID, version string, st enforcer.Stats, groups map[string]enforcer.GroupStatus) Report {
	r := Report{HostID: hostID, Version: version, Generation: st.AppliedGeneration, Error: st.LastError,
		DriftRepairs: int64(st.DriftRepairs), Groups: make(map[string]GroupReport, len(groups))}
	for id, g := range groups {
		r.Groups[id] = GroupReport{Generation: g.Applied, Error: g.Error}
	}
	return r
}

// StoreReport returns the report as the store keeps it, seen at now (the
// console's clock, not the host's). A heartbeat has no groups: the store
// keeps the last ones.
func (r Report) StoreReport(now time.Time) store.HostReport {
	out := store.HostReport{LastSeen: now, Version: r.Version, AppliedGeneration: r.Generation,
		DriftRepairs: r.DriftRepairs, Error: r.Error}
	if !r.Heartbeat {
		out.Groups = make(map[string]store.GroupReport, len(r.Groups))
		for id, g := range r.Groups {
			out.Groups[id] = store.GroupReport{AppliedGeneration: g.Generation, Error: g.Error}
		}
	}
	return out
}

// Observations are what a host saw since it last sent them: the packets
// its rules logged, and its counters that moved. Agents send them about
// every second while something is new; a report's counters (at every
// heartbeat) remain, for consoles that do not know this message.
type Observations struct {
	HostID  string     `json:"host_id"`
	Entries []LogEntry `json:"entries,omitempty"`
	// Counters are by group ID, then by rule tag, as in Report: those that
	// moved since the last Observations the console accepted, and all of
	// them in the first of a session.
	Counters map[string]map[string]Counter `json:"counters,omitempty"`
	// Log is the host's packet log's totals since the agent started.
	Log LogStats `json:"log"`
}

// LogEntry is one packet a host's kernel logged (packetlog.Entry on the
// wire). Which server holds the packet's local address, and the rule's
// position, are the console's to say: it knows them.
type LogEntry struct {
	Time            time.Time       `json:"time"`
	GroupID         string          `json:"group_id"`
	Direction       store.Direction `json:"direction"`
	Protocol        string          `json:"protocol"`
	Source          netip.Addr      `json:"source"`
	SourcePort      uint16          `json:"source_port"`
	Destination     netip.Addr      `json:"destination"`
	DestinationPort uint16          `json:"destination_port"`
	Verdict         store.Policy    `json:"verdict"`
	// DecidedBy is the kind of what decided ("rule", "smtp",
	// "default_policy", ...) and the rule's ID.
	DecidedBy store.Decider `json:"decided_by"`
}

// LogStats are a host's packet log's totals.
type LogStats struct {
	Received    uint64 `json:"received"`     // entries the kernel delivered
	BufferDrops uint64 `json:"buffer_drops"` // entries the kernel dropped for lack of buffer
	// Dropped counts entries the agent could not keep for the console
	// (its queue full while no console took them).
	Dropped uint64 `json:"dropped"`
}

// EnrolRequest asks for a host's first certificate with its join secret.
type EnrolRequest struct {
	JoinSecret string `json:"join_secret"`
	CSR        []byte `json:"csr"` // DER, base64 in JSON
}

// EnrolResponse is the host's credential and the console's CA.
type EnrolResponse struct {
	HostID      string `json:"host_id"`
	HostName    string `json:"host_name"`
	Certificate []byte `json:"certificate"` // DER
	CA          []byte `json:"ca"`          // DER
}

// RenewRequest asks for a new certificate for the key of CSR, with the
// current certificate as the TLS client certificate.
type RenewRequest struct {
	CSR []byte `json:"csr"` // DER
}

// RenewResponse is the new certificate.
type RenewResponse struct {
	Certificate []byte `json:"certificate"` // DER
}

// ErrorResponse is the body of every refusal.
type ErrorResponse struct {
	Error string `json:"error"`
}

// JoinToken is what an operator gives an agent to enrol: the host's join
// secret, redeemed once, and the pin of the console's CA (Pin), which the
// agent checks before it trusts the console with the secret.
type JoinToken struct {
	Secret string
	Pin    string
}

// String returns the token as operators copy it: SECRET.PIN.
func (t JoinToken) String() string { return t.Secret + "." + t.Pin }

// ErrBadJoinToken is returned (wrapped) by ParseJoinToken.
var ErrBadJoinToken = errors.New("a join token is SECRET.PIN, as `rampart host add` prints it")

// ParseJoinToken reads SECRET.PIN.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return JoinToken{}, ErrBadJoinToken
	}
	t := JoinToken{Secret: s[:i], Pin: s[i+1:]}
	if b, err := base64.RawURLEncoding.DecodeString(t.Pin); err != nil || len(b) != sha256.Size {
		return JoinToken{}, ErrBadJoinToken
	}
	return t, nil
}

// Pin returns the pin of a CA certificate (DER): its SHA-256, base64url.
func Pin(caDER []byte) string {
	sum := sha256.Sum256(caDER)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// HostIDOf returns the host a client certificate was issued to: its
// subject's common name.
func HostIDOf(cert *x509.Certificate) string { return cert.Subject.CommonName }

// Serial returns a certificate serial number as the store keeps it:
// lowercase hexadecimal.
func Serial(n *big.Int) string { return n.Text(16) }

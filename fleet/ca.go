package fleet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// caSecret names the store secret the CA is derived from.
const caSecret = "fleet_ca_seed"

// CA is the agents' certificate authority. It signs the hosts' client
// certificates and the consoles' server certificates; the agents trust
// nothing else, and the consoles accept no other host certificate.
//
// Its key is derived from a store secret (an Ed25519 seed) and its
// certificate from the key alone, so that every console on one database
// holds the same CA without writing anything but the seed, which
// store.DB.Secret creates once, race-free. Ed25519 signatures are
// deterministic: the certificate is the same bytes on every console, and so
// is the pin that join tokens carry.
type CA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	pool *x509.CertPool
	pin  string
}

// LoadCA returns the CA of the console's database, creating its secret on
// first use.
func LoadCA(ctx context.Context, db *store.DB) (*CA, error) {
	seed, err := db.Secret(ctx, caSecret, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("agents' CA: %w", err)
	}
	return newCA(seed)
}

func newCA(seed []byte) (*CA, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("agents' CA: seed of %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject:      pkix.Name{CommonName: "Rampart agents CA " + hex.EncodeToString(sum[:4])},
		// Fixed dates keep the certificate the same on every console. A CA
		// without a set end uses 9999-12-31 (RFC 5280, 4.1.2.5).
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("agents' CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("agents' CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool, pin: hostview.Pin(der)}, nil
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pin returns the pin of the CA's certificate, which join tokens carry.
func (ca *CA) Pin() string { return ca.pin }

// Pool returns a pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// backdate is how long before its issue a certificate is valid from,
// which absorbs clocks a little behind: five minutes, or a quarter of
// short lifetimes (tests use seconds).
func backdate(lifetime time.Duration) time.Duration { return min(5*time.Minute, lifetime/4) }

// validity returns the dates of a certificate whose end is notAfter: its
// start follows from its end, so that a certificate issued again for a
// retried renewal is the same bytes.
func validity(notAfter time.Time, lifetime time.Duration) (time.Time, time.Time) {
	notAfter = notAfter.UTC().Truncate(time.Second)
	return notAfter.Add(-lifetime - backdate(lifetime)), notAfter
}

// checkCSR parses a certificate request and checks its signature and key.
func checkCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("certificate request: ECDSA keys must be P-256 or P-384")
		}
	default:
		return nil, fmt.Errorf("certificate request: %T keys are not accepted (Ed25519 or ECDSA)", k)
	}
	return csr, nil
}

// issueHost signs a client certificate for host hostID, for the key of
// csr, with the serial and end given.
func (ca *CA) issueHost(csr *x509.CertificateRequest, hostID string, serial *big.Int, notAfter time.Time, lifetime time.Duration) ([]byte, error) {
	nb, na := validity(notAfter, lifetime)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostID, Organization: []string{"Rampart host"}},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign host certificate: %w", err)
	}
	return der, nil
}

// newSerial returns a random serial for a first certificate: 127 bits.
func newSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // never short: serials print the same length
	return new(big.Int).SetBytes(b)
}

// renewalSerial returns the serial of the certificate that renews the one
// of serial old for pub. It follows from both, so that a renewal whose
// answer was lost can be asked again with the old certificate and the
// same key, and be answered with the same certificate (see handleRenew),
// while only the current serial is accepted everywhere else.
func renewalSerial(old string, pub crypto.PublicKey) (*big.Int, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte("rampart renewal\x00" + old + "\x00"))
	h.Write(der)
	b := h.Sum(nil)[:16]
	b[0] &= 0x7f
	b[0] |= 0x40
	return new(big.Int).SetBytes(b), nil
}

// serverCerts issues the console's TLS server certificate, for names (DNS
// names or IP addresses), signed by the CA with a key of its own, and
// issues a new one when two thirds of its life have passed.
type serverCerts struct {
	ca       *CA
	names    []string
	lifetime time.Duration

	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

func (s *serverCerts) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Now().Before(s.renew) {
		return s.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: "Rampart console", Organization: []string{"Rampart console"}},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	tmpl.NotBefore, tmpl.NotAfter = validity(time.Now().Add(s.lifetime), s.lifetime)
	for _, n := range s.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca.cert, key.Public(), s.ca.key)
	if err != nil {
		return nil, fmt.Errorf("console certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	// The chain carries the CA: an enrolling agent, which trusts nothing
	// yet, checks it against the pin of its join token.
	s.cert = &tls.Certificate{Certificate: [][]byte{der, s.ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
	s.renew = time.Now().Add(s.lifetime * 2 / 3)
	return s.cert, nil
}

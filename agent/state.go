package agent

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rampart-fw/rampart/hostview"
)

// Files of the state directory. Each is replaced whole (see writeFile): a
// crash leaves the old one or the new one, never a mix.
const (
	credentialFile = "credential.json"
	viewFile       = "view.json"
)

// credential is what the agent keeps of its enrolment: who it is, its key
// and certificate, the console's CA, and the consoles it was given.
type credential struct {
	HostID      string   `json:"host_id"`
	HostName    string   `json:"host_name"`
	Consoles    []string `json:"consoles"`
	Key         []byte   `json:"key"`         // PKCS #8, DER
	Certificate []byte   `json:"certificate"` // DER
	CA          []byte   `json:"ca"`          // DER
	// PendingKey is the key of a renewal under way (PKCS #8, DER): kept
	// before the request is sent, so that a renewal whose answer was lost
	// is asked again for the same key, which the console answers with the
	// same certificate.
	PendingKey []byte `json:"pending_key,omitempty"`
}

// parsed is a credential ready for TLS.
type parsed struct {
	cred credential
	tls  tls.Certificate
	leaf *x509.Certificate
	ca   *x509.Certificate
	pool *x509.CertPool
}

func parseCredential(c credential) (*parsed, error) {
	key, err := x509.ParsePKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate)
	if err != nil {
		return nil, fmt.Errorf("credential certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(c.CA)
	if err != nil {
		return nil, fmt.Errorf("credential CA: %w", err)
	}
	if err := checkIssued(leaf, ca, key.(crypto.Signer).Public(), c.HostID); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &parsed{cred: c, tls: tls.Certificate{Certificate: [][]byte{c.Certificate}, PrivateKey: key, Leaf: leaf},
		leaf: leaf, ca: ca, pool: pool}, nil
}

// checkIssued checks that cert was signed by ca, for pub, for host hostID.
func checkIssued(cert, ca *x509.Certificate, pub crypto.PublicKey, hostID string) error {
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("certificate not signed by the console's CA: %w", err)
	}
	want, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !want.Equal(cert.PublicKey) {
		return errors.New("certificate is not for this agent's key")
	}
	if hostview.HostIDOf(cert) != hostID {
		return fmt.Errorf("certificate is for host %s, not %s", hostview.HostIDOf(cert), hostID)
	}
	return nil
}

// openStateDir creates dir (0700) when missing and narrows it when others
// may read it: it holds the host's private key.
func openStateDir(dir string) error {
	if dir == "" {
		return errors.New("a state directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

// readJSON reads dir/name into v; it reports false when the file does not
// exist.
func readJSON(dir, name string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return true, nil
}

// writeJSON replaces dir/name with v.
func writeJSON(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFile(dir, name, b)
}

// writeFile replaces dir/name with data, atomically and durably: a
// temporary file in the same directory, written, synced, renamed over
// the old one, and the directory synced so that the rename survives a
// power cut.
func writeFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

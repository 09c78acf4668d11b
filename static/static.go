// Package static holds the console's CSS, scripts and images, embedded in
// the binary. vendor/htmx.min.js is copied from the pinned npm package
// htmx.org (see package.json at the repository root: `npm ci && npm run
// vendor`) and committed, so that `go build` needs no npm.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

// FS is the static tree: css/, js/, img/ and vendor/.
//
//go:embed css js img vendor
var FS embed.FS

// Version is a short hash of every embedded file. Pages link assets with
// ?v=Version so that they can be cached for a long time and still change
// with each release.
var Version = hashFS()

func hashFS() string {
	h := sha256.New()
	fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := FS.ReadFile(path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

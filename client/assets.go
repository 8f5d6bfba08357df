// Package client embeds the browser client (the built files in dist/) and the demo call page
// (demo/), so that a Switchboard server serves them without npm.
package client

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist/switchboard.js dist/switchboard.iife.js dist/switchboard.d.ts demo/index.html demo/demo.css demo/demo.js
var files embed.FS

// paths maps each URL path the client is served at to its embedded file.
var paths = map[string]string{
	"/":                    "demo/index.html",
	"/demo.css":            "demo/demo.css",
	"/demo.js":             "demo/demo.js",
	"/switchboard.js":      "dist/switchboard.js",
	"/switchboard.iife.js": "dist/switchboard.iife.js",
	"/switchboard.d.ts":    "dist/switchboard.d.ts",
}

// Files returns the URL paths the client is served at, each with the file it serves (relative to
// this directory).
func Files() map[string]string {
	out := make(map[string]string, len(paths))
	for k, v := range paths {
		out[k] = v
	}
	return out
}

// demoCSP is the Content-Security-Policy of the demo page: its own scripts and styles only; it
// may connect to other Switchboard instances (?servers=).
const demoCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self' http: https: ws: wss:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// library lists the URL paths of the library itself: the files a page on another origin loads
// (an ES module import is a CORS request, so it needs Access-Control-Allow-Origin).
var library = map[string]bool{
	"/switchboard.js":      true,
	"/switchboard.iife.js": true,
	"/switchboard.d.ts":    true,
}

// Options configure Handler and Mount.
type Options struct {
	// CORSOrigins are the browser origins whose pages may load the library files across
	// origins, as for the protocol endpoint: "*" allows any; an origin matches exactly. Empty:
	// same-origin pages only. The demo page is never served across origins.
	CORSOrigins []string
}

// asset is one file ready to serve.
type asset struct {
	name        string
	contentType string
	body        []byte
	gz          []byte // gzip-compressed body, nil when compression does not pay
	etag        string
	cors        bool // a library file: CORS headers per Options.CORSOrigins
}

// Handler serves the embedded files at the paths of Files (GET and HEAD): content types,
// `Cache-Control: no-cache` with strong ETags (browsers revalidate and get 304 while the file is
// unchanged), gzip when the client accepts it, and CORS headers on the library files per
// opts. Other paths get 404.
func Handler(opts Options) http.Handler {
	cors := newCORS(opts.CORSOrigins)
	assets := make(map[string]*asset, len(paths))
	for urlPath, name := range paths {
		body, err := files.ReadFile(name)
		if err != nil {
			panic(fmt.Sprintf("client: embedded file %s: %v", name, err)) // a build defect
		}
		sum := sha256.Sum256(body)
		a := &asset{
			name:        name,
			contentType: contentType(name),
			body:        body,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			cors:        library[urlPath],
		}
		if gz := compress(body); len(gz) < len(body)*9/10 {
			a.gz = gz
		}
		assets[urlPath] = a
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if a.cors {
			cors.apply(w.Header(), r.Header.Get("Origin"))
		}
		a.serve(w, r)
	})
}

// Mount registers Handler(opts) on mux at every path of Files.
func Mount(mux *http.ServeMux, opts Options) {
	h := Handler(opts)
	for urlPath := range paths {
		pattern := "GET " + urlPath
		if urlPath == "/" {
			pattern = "GET /{$}"
		}
		mux.Handle(pattern, h)
	}
}

func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if a.contentType == "text/html; charset=utf-8" {
		h.Set("Content-Security-Policy", demoCSP)
		h.Set("Referrer-Policy", "no-referrer")
	}
	body, etag := a.body, a.etag
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body = a.gz
			etag = strings.TrimSuffix(a.etag, `"`) + `-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	// Embedded files have no modification time: the ETag alone does the revalidation.
	http.ServeContent(w, r, path.Base(a.name), time.Time{}, bytes.NewReader(body))
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".d.ts"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		return "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	}
	return "application/octet-stream"
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip (and does not give it q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// corsPolicy answers cross-origin requests for the library files the way the protocol
// endpoint's CORS does: "*" to anyone, or the request's origin when it is listed (with
// credentials allowed, as there), and Vary: Origin so that caches keep the answers apart.
type corsPolicy struct {
	anyOrigin bool
	origins   map[string]bool
}

func newCORS(origins []string) corsPolicy {
	c := corsPolicy{origins: make(map[string]bool, len(origins))}
	for _, o := range origins {
		if o == "*" {
			c.anyOrigin = true
		}
		c.origins[o] = true
	}
	return c
}

func (c corsPolicy) apply(h http.Header, origin string) {
	if c.anyOrigin {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	if len(c.origins) == 0 {
		return // same-origin only: the answer does not depend on the origin
	}
	h.Add("Vary", "Origin")
	if origin != "" && c.origins[origin] {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

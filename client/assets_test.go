package client_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	client.Mount(mux, client.Options{})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// request sends one request with the given headers; it returns the response and its raw body.
func request(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A transport of its own that does not decompress, so Content-Encoding can be checked.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServesEveryFileWithItsType(t *testing.T) {
	srv := serve(t)
	want := map[string]string{
		"/":                    "text/html; charset=utf-8",
		"/demo.css":            "text/css; charset=utf-8",
		"/demo.js":             "text/javascript; charset=utf-8",
		"/switchboard.js":      "text/javascript; charset=utf-8",
		"/switchboard.iife.js": "text/javascript; charset=utf-8",
		"/switchboard.d.ts":    "text/plain; charset=utf-8",
	}
	files := client.Files()
	if len(want) != len(files) {
		t.Fatalf("Files has %d paths, the test knows %d", len(files), len(want))
	}
	for p, ctype := range want {
		resp, body := request(t, "GET", srv.URL+p, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != ctype {
			t.Errorf("%s: Content-Type %q, want %q", p, got, ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("%s: Cache-Control %q", p, got)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, resp.Header)
		}
		disk, err := os.ReadFile(files[p])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, disk) {
			t.Errorf("%s: served body differs from %s", p, files[p])
		}
	}
	resp, _ := request(t, "GET", srv.URL+"/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("demo page CSP %q", csp)
	}
	resp, body := request(t, "GET", srv.URL+"/switchboard.iife.js", nil)
	if !bytes.Contains(body, []byte("var Switchboard=")) || resp.StatusCode != 200 {
		t.Error("the classic script does not define the global Switchboard")
	}
}

func TestRevalidationAndCompression(t *testing.T) {
	srv := serve(t)
	url := srv.URL + "/switchboard.js"
	resp, plain := request(t, "GET", url, nil)
	etag := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatal("compressed without Accept-Encoding")
	}
	resp, _ = request(t, "GET", url, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: %d", resp.StatusCode)
	}
	resp, _ = request(t, "GET", url, map[string]string{"If-None-Match": `"stale"`})
	if resp.StatusCode != 200 {
		t.Fatalf("If-None-Match with a stale ETag: %d", resp.StatusCode)
	}

	resp, gz := request(t, "GET", url, map[string]string{"Accept-Encoding": "br, gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip: headers %v", resp.Header)
	}
	if gzTag := resp.Header.Get("ETag"); gzTag == etag || gzTag == "" {
		t.Fatalf("gzip ETag %q equals the identity ETag", gzTag)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain) {
		t.Fatalf("gzip body does not decompress to the file (err %v)", err)
	}
	if len(gz) >= len(plain)/2 {
		t.Errorf("gzip saves little: %d of %d bytes", len(gz), len(plain))
	}
	resp, _ = request(t, "GET", url, map[string]string{"Accept-Encoding": "gzip;q=0"})
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 got gzip")
	}

	resp, body := request(t, "HEAD", url, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(plain)) {
		t.Fatalf("HEAD: %d, %d body bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
}

func TestOtherPathsAndMethods(t *testing.T) {
	srv := serve(t)
	for _, p := range []string{"/index.html", "/demo/index.html", "/dist/switchboard.js", "/switchboard.js/x", "/nope"} {
		if resp, _ := request(t, "GET", srv.URL+p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := request(t, "POST", srv.URL+"/switchboard.js", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	// The handler on its own refuses other methods too.
	rec := httptest.NewRecorder()
	client.Handler(client.Options{}).ServeHTTP(rec, httptest.NewRequest("PUT", "/switchboard.js", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("PUT through Handler: %d %v", rec.Code, rec.Header())
	}
}

// The library files follow the allowed origins (a page on another origin imports the ES module,
// a CORS request); the demo page never answers across origins.
func TestLibraryFilesFollowTheAllowedOrigins(t *testing.T) {
	const app = "https://app.example"
	mux := http.NewServeMux()
	client.Mount(mux, client.Options{CORSOrigins: []string{app, "https://other.example"}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	varies := func(resp *http.Response) bool {
		for _, v := range resp.Header.Values("Vary") {
			if strings.Contains(v, "Origin") {
				return true
			}
		}
		return false
	}
	for _, p := range []string{"/switchboard.js", "/switchboard.iife.js", "/switchboard.d.ts"} {
		resp, _ := request(t, "GET", srv.URL+p, map[string]string{"Origin": app, "Accept-Encoding": "gzip"})
		if resp.Header.Get("Access-Control-Allow-Origin") != app || !varies(resp) ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("%s from an allowed origin: %v", p, resp.Header)
		}
		resp, _ = request(t, "GET", srv.URL+p, map[string]string{"Origin": app, "If-None-Match": resp.Header.Get("ETag"), "Accept-Encoding": "gzip"})
		if resp.StatusCode != http.StatusNotModified || resp.Header.Get("Access-Control-Allow-Origin") != app {
			t.Errorf("%s revalidated from an allowed origin: %d %v", p, resp.StatusCode, resp.Header)
		}
		for _, origin := range []string{"https://evil.example", ""} {
			resp, _ = request(t, "GET", srv.URL+p, map[string]string{"Origin": origin})
			if resp.Header.Get("Access-Control-Allow-Origin") != "" || !varies(resp) {
				t.Errorf("%s from origin %q: %v", p, origin, resp.Header)
			}
		}
	}
	for _, p := range []string{"/", "/demo.js", "/demo.css"} {
		resp, _ := request(t, "GET", srv.URL+p, map[string]string{"Origin": app})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s across origins: %v", p, resp.Header)
		}
	}

	mux = http.NewServeMux()
	client.Mount(mux, client.Options{CORSOrigins: []string{"*"}})
	wild := httptest.NewServer(mux)
	defer wild.Close()
	resp, _ := request(t, "GET", wild.URL+"/switchboard.js", map[string]string{"Origin": "https://evil.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("any origin: %v", resp.Header)
	}
	// Without allowed origins only same-origin pages load the library.
	resp, _ = request(t, "GET", serve(t).URL+"/switchboard.js", map[string]string{"Origin": app})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no allowed origins: %v", resp.Header)
	}
}

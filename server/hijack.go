package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// releaseAfterHijack hands the Socket.IO library a ResponseWriter that forgets net/http's own
// once the connection is hijacked for a websocket. The library keeps every handshake's
// ResponseWriter for the life of the connection; net/http's holds the connection's 4 KB read
// buffer and its response buffers, which a hijacked connection never uses again.
func releaseAfterHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&hijackRelease{ResponseWriter: w, header: w.Header()}, r)
	})
}

type hijackRelease struct {
	http.ResponseWriter
	header http.Header
}

func (w *hijackRelease) Header() http.Header { return w.header }

func (w *hijackRelease) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return c, brw, err
	}
	w.ResponseWriter = hijacked{}
	return &corkConn{Conn: c}, brw, nil // see wsbatch.go
}

func (w *hijackRelease) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// hijacked is what is left of a ResponseWriter after Hijack.
type hijacked struct{}

func (hijacked) Header() http.Header       { return http.Header{} }
func (hijacked) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (hijacked) WriteHeader(int)           {}

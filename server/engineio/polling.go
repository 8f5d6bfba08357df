package engineio

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// probeGrace is how long a poll that arrives between the probe's answer and the upgrade
// packet waits for that packet (see servePoll).
const probeGrace = 100 * time.Millisecond

// servePolling handles a GET (poll) or POST (payload) of an open polling session.
func (s *Socket) servePolling(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.servePoll(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		writeError(w, codeBadRequest)
	}
}

// checkLocked answers a request the session cannot take and returns false, with what to do
// once s.mu is released. Called with s.mu held.
func (s *Socket) checkLocked(w http.ResponseWriter) (ok bool, after func()) {
	if s.state == stateClosed {
		if !s.lingerUntil.IsZero() {
			s.lingerUntil = time.Time{}
			writePayload(w, []byte{typeNoop})
			return false, func() { s.srv.remove(s.id) }
		}
		writeError(w, codeUnknownSID)
		return false, nil
	}
	if s.transport != "polling" {
		writeError(w, codeBadRequest)
		return false, nil
	}
	// The heartbeat loop ticks coarsely; a request arriving after the pong deadline must not
	// revive the session.
	if !s.pongDeadline.IsZero() && !time.Now().Before(s.pongDeadline) {
		writeError(w, codeUnknownSID)
		return false, func() { s.finish("ping timeout", typeClose) }
	}
	return true, nil
}

// lockForRequest locks s.mu for a polling request. When the session cannot take it, the request
// is answered, the lock released (then what checkLocked asked for is done) and false returned.
func (s *Socket) lockForRequest(w http.ResponseWriter) bool {
	s.mu.Lock()
	ok, after := s.checkLocked(w)
	if ok {
		return true
	}
	s.mu.Unlock()
	if after != nil {
		after()
	}
	return false
}

func (s *Socket) servePoll(w http.ResponseWriter, r *http.Request) {
	if !s.lockForRequest(w) {
		return
	}
	if s.poll != nil {
		// Two polls at once: the client is broken. The first gets a close packet.
		s.mu.Unlock()
		writeError(w, codeBadRequest)
		s.finish("transport error", typeClose)
		return
	}
	if len(s.out) > 0 {
		body, last := s.takePayloadLocked()
		s.mu.Unlock()
		writePayload(w, body)
		if last {
			s.finish("forced close", typeClose)
		}
		return
	}
	if s.upgrading != nil && s.noopSent {
		s.mu.Unlock()
		writeError(w, codeBadRequest)
		return
	}
	wait := &pollWait{ch: make(chan struct{})}
	var grace <-chan time.Time
	if s.noop {
		// The probe was answered while no poll was parked. This poll was either sent before
		// the client saw that answer (it gets the noop, then the client sends its upgrade
		// packet) or after the upgrade packet, which may still be on its way on the
		// websocket: it waits up to probeGrace for that packet, and is refused if it comes.
		wait.afterProbe = true
		t := time.NewTimer(probeGrace)
		defer t.Stop()
		grace = t.C
	}
	s.poll = wait
	s.mu.Unlock()

	select {
	case <-wait.ch:
	case <-grace:
		s.mu.Lock()
		if s.poll == wait {
			s.poll = nil
			s.noop, s.noopSent = false, s.upgrading != nil // a failed probe has reset both
			s.mu.Unlock()
			writePayload(w, []byte{typeNoop})
			return
		}
		s.mu.Unlock()
		<-wait.ch // answered meanwhile
	case <-r.Context().Done():
		s.mu.Lock()
		mine := s.poll == wait
		if mine {
			s.poll = nil
		}
		s.mu.Unlock()
		// The client gave up on the poll (or the answer raced the cancellation and is lost):
		// the session cannot go on.
		s.finish("transport close", typeClose)
		return
	}
	if wait.refused {
		writeError(w, codeBadRequest)
		return
	}
	writePayload(w, wait.body)
	if wait.last {
		s.finish("forced close", typeClose)
	}
}

func (s *Socket) servePost(w http.ResponseWriter, r *http.Request) {
	if !s.lockForRequest(w) {
		return
	}
	if s.posting {
		s.mu.Unlock()
		writeError(w, codeBadRequest)
		s.finish("transport error", typeClose)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.srv.opts.MaxPayload)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.Header().Set("Connection", "close")
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		}
		s.finish("transport error", typeClose)
		return
	}
	// The whole payload is checked before any of it is delivered: an undecodable one ends the
	// session and delivers nothing.
	if err := decodePayload(body, s.onPacket); err != nil {
		writeError(w, codeBadRequest)
		s.finish("parse error", typeClose)
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", "2")
	_, _ = w.Write([]byte("ok"))
}

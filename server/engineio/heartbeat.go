package engineio

import "time"

// The heartbeat runs on one ticker per server, not a timer per session: each tick visits the
// sessions and sends the pings that are due, and ends sessions whose pong, upgrade or closing
// poll is overdue. The tick is a tenth of the shorter heartbeat setting, within [5ms, 500ms],
// so a deadline is met within that; a poll arriving after a missed pong is refused at once.

func (s *Server) tick() time.Duration {
	return min(max(min(s.opts.PingInterval, s.opts.PingTimeout)/10, 5*time.Millisecond), 500*time.Millisecond)
}

func (s *Server) heartbeat() {
	defer s.beat.Done()
	t := time.NewTicker(s.tick())
	defer t.Stop()
	var due []*Socket
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			due = due[:0]
			s.mu.RLock()
			for _, sock := range s.sessions {
				if sock.dueAt(now) {
					due = append(due, sock)
				}
			}
			s.mu.RUnlock()
			for i, sock := range due {
				sock.beat(now)
				due[i] = nil
			}
		}
	}
}

// dueAt says whether the session has something to do at now; it also drops the handshake
// context built since the last tick.
func (s *Socket) dueAt(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = nil // see Request
	switch {
	case s.state == stateClosed:
		return s.lingerUntil != (time.Time{}) && !now.Before(s.lingerUntil)
	case s.pongDeadline.IsZero() && !now.Before(s.nextPing) && s.state == stateOpen:
		return true
	case !s.pongDeadline.IsZero() && !now.Before(s.pongDeadline):
		return true
	case s.upgrading != nil && !now.Before(s.upgradeDeadline):
		return true
	case s.state == stateClosing && !s.closeDeadline.IsZero() && !now.Before(s.closeDeadline):
		return true
	}
	return false
}

// beat does what is due at now.
func (s *Socket) beat(now time.Time) {
	s.mu.Lock()
	if s.state == stateClosed {
		linger := !s.lingerUntil.IsZero() && !now.Before(s.lingerUntil)
		s.lingerUntil = time.Time{}
		s.mu.Unlock()
		if linger {
			s.srv.remove(s.id)
		}
		return
	}
	if !s.pongDeadline.IsZero() && !now.Before(s.pongDeadline) {
		s.mu.Unlock()
		s.finish("ping timeout", typeClose)
		return
	}
	if s.state == stateClosing && !s.closeDeadline.IsZero() && !now.Before(s.closeDeadline) {
		s.mu.Unlock()
		s.finish("forced close", typeClose)
		return
	}
	var probe *wsConn
	if s.upgrading != nil && !now.Before(s.upgradeDeadline) {
		probe = s.upgrading
		s.upgrading, s.noop, s.noopSent = nil, false, false
	}
	ping := s.state == stateOpen && s.pongDeadline.IsZero() && !now.Before(s.nextPing)
	if ping {
		// Counted from when the ping was due, as a timer per session would: a late tick
		// does not lengthen the heartbeat.
		s.pongDeadline = s.nextPing.Add(s.srv.opts.PingTimeout)
	}
	s.mu.Unlock()
	if probe != nil {
		probe.closeWith(closeNormal)
	}
	if ping {
		s.sendPacket(packet{typ: typePing})
	}
}

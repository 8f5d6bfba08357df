package main

// The call flow, per call (docs/protocol.md, "The call flow"):
//
//	caller (instance i)      joins, offers, sends N candidates: all held (answered held:true)
//	answerer (instance i+1)  joins; receives the offer and the N early candidates  <- hand-off
//	answerer                 answers and sends N candidates at once             <- live relays
//	caller                   receives peer-joined, the answer and the N candidates
//	(both hold the call for -hold)
//	caller                   hangs up and leaves; the answerer receives hangup and peer-left
//	answerer                 leaves
//
// Every server event is checked against what the other side sent: each expected message must
// be applied exactly once, in order, with the content sent.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// slot is one concurrent call: a caller connection and an answerer connection, reused call
// after call (or dialled anew per call with -conn-per-call).
type slot struct {
	id                 int
	callerInst, ansIns int
	caller, answerer   *side
	calls              int
}

// callOutcome is what one call reports.
type callOutcome struct {
	started, ended time.Time
	err            error
	phase          string
	handoff        time.Duration
	relays         []time.Duration
	setup          time.Duration
	check          checkResult
}

type checkResult struct {
	expected, received, lost, duplicated, misordered, badContent int
	connLost                                                     int // not applied because a connection ended
}

func (c *checkResult) addAll(o checkResult) {
	c.expected += o.expected
	c.received += o.received
	c.lost += o.lost
	c.duplicated += o.duplicated
	c.misordered += o.misordered
	c.badContent += o.badContent
	c.connLost += o.connLost
}

// expect is one message a side must apply.
type expect struct {
	key   string // event name, or candidate:<i>
	match func(applied) bool
}

func keyOf(a applied) string {
	if a.name == "candidate" && a.ev.Candidate != nil {
		if i, ok := candidateIndex(a.ev.Candidate.Candidate); ok {
			return "candidate:" + strconv.Itoa(i)
		}
	}
	return a.name
}

// check compares what a side applied with what it should have, once each and in order.
func check(got []applied, want []expect) checkResult {
	r := checkResult{expected: len(want), received: len(got)}
	count := map[string]int{}
	first := map[string]applied{}
	var order []string
	for _, a := range got {
		k := keyOf(a)
		if count[k] == 0 {
			first[k] = a
			order = append(order, k)
		}
		count[k]++
	}
	wantKeys := map[string]bool{}
	var wantOrder []string
	for _, w := range want {
		wantKeys[w.key] = true
		n := count[w.key]
		switch {
		case n == 0:
			r.lost++
			continue
		case n > 1:
			r.duplicated += n - 1
		}
		wantOrder = append(wantOrder, w.key)
		if w.match != nil && !w.match(first[w.key]) {
			r.badContent++
		}
	}
	for k, n := range count {
		if !wantKeys[k] {
			r.badContent += n // something nobody sent
		}
	}
	var gotOrder []string
	for _, k := range order {
		if wantKeys[k] {
			gotOrder = append(gotOrder, k)
		}
	}
	for i := range gotOrder {
		if i < len(wantOrder) && gotOrder[i] != wantOrder[i] {
			r.misordered++
		}
	}
	return r
}

// runCall plays one call on a slot.
func (g *gen) runCall(ctx context.Context, sl *slot) (out callOutcome) {
	out.started = time.Now()
	defer func() { out.ended = time.Now() }()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.callTimeout+g.cfg.hold)
	defer cancel()
	sl.calls++
	room := fmt.Sprintf("%s-%d-%d", g.runID, sl.id, sl.calls)
	ca, an := sl.caller, sl.answerer
	ca.reset(room)
	an.reset(room)
	n := g.cfg.candidates
	fail := func(phase string, err error) callOutcome {
		out.phase, out.err = phase, err
		return out
	}

	// The caller joins, offers and sends its candidates while alone: all held.
	if _, err := ca.join(ctx); err != nil {
		return fail("caller join", err)
	}
	offer := g.sdp(room, "offer")
	reqs := make([]*request, 0, n+1)
	reqs = append(reqs, ca.send("offer", `"sdp":`+jsonString(offer)))
	for i := range n {
		reqs = append(reqs, ca.send("candidate", candidateFields(i)))
	}
	for _, r := range reqs {
		rep, err := r.wait(ctx)
		if err != nil {
			return fail("caller "+r.event, err)
		}
		if !rep.Held && !rep.Duplicate { // a duplicate: the first copy was applied; its reply came late
			return fail("caller "+r.event, errors.New("not held"))
		}
	}

	// The answerer joins on the other instance: the hand-off.
	joinAt := time.Now()
	if _, err := an.join(ctx); err != nil {
		return fail("answerer join", err)
	}
	got, err := an.waitGot(ctx, n+1)
	if err != nil {
		return fail("hand-off", err)
	}
	out.handoff = got[n].at.Sub(joinAt)

	// Live relays: the answer and the answerer's candidates, sent at once.
	answer := g.sdp(room, "answer")
	reqs = reqs[:0]
	reqs = append(reqs, an.send("answer", `"sdp":`+jsonString(answer)))
	for i := range n {
		reqs = append(reqs, an.send("candidate", candidateFields(i)))
	}
	for _, r := range reqs {
		if _, err := r.wait(ctx); err != nil {
			return fail("answerer "+r.event, err)
		}
	}
	if _, err := ca.waitGot(ctx, n+2); err != nil {
		return fail("relay", err)
	}
	out.setup = time.Since(out.started)
	sentAt := map[string]time.Time{}
	for i, r := range reqs {
		k := "answer"
		if i > 0 {
			k = "candidate:" + strconv.Itoa(i-1)
		}
		sentAt[k] = r.sentAt
	}
	for _, a := range ca.applied() {
		if t, ok := sentAt[keyOf(a)]; ok {
			out.relays = append(out.relays, a.at.Sub(t))
			delete(sentAt, keyOf(a))
		}
	}

	if g.cfg.hold > 0 {
		select {
		case <-time.After(g.cfg.hold):
		case <-ctx.Done():
			return fail("hold", ctx.Err())
		}
	}

	// Teardown.
	if _, err := ca.send("hangup", "").wait(ctx); err != nil {
		return fail("caller hangup", err)
	}
	if _, err := ca.send("leave", "").wait(ctx); err != nil {
		return fail("caller leave", err)
	}
	if _, err := an.waitGot(ctx, n+3); err != nil {
		return fail("teardown", err)
	}
	if _, err := an.send("leave", "").wait(ctx); err != nil {
		return fail("answerer leave", err)
	}

	// What each side applied against what the other sent.
	an.mu.Lock()
	answererPeer := an.peer
	an.mu.Unlock()
	ca.mu.Lock()
	callerPeer := ca.peer
	ca.mu.Unlock()
	from := func(p string) func(applied) bool { return func(a applied) bool { return a.ev.From == p } }
	wantAn := []expect{{"offer", func(a applied) bool { return a.ev.From == callerPeer && a.ev.SDP == offer }}}
	for i := range n {
		wantAn = append(wantAn, expect{"candidate:" + strconv.Itoa(i), from(callerPeer)})
	}
	wantAn = append(wantAn,
		expect{"hangup", from(callerPeer)},
		expect{"peer-left", func(a applied) bool { return a.ev.Peer == callerPeer && a.ev.Reason == "left" }})
	wantCa := []expect{
		{"peer-joined", func(a applied) bool { return a.ev.Peer == answererPeer }},
		{"answer", func(a applied) bool { return a.ev.From == answererPeer && a.ev.SDP == answer }},
	}
	for i := range n {
		wantCa = append(wantCa, expect{"candidate:" + strconv.Itoa(i), from(answererPeer)})
	}
	out.check = check(ca.applied(), wantCa)
	out.check.addAll(check(an.applied(), wantAn))
	return out
}

// lostOnFailure counts what a failed call had not received as lost, so a failure never hides a loss.
func lostOnFailure(sl *slot, candidates int) checkResult {
	want := 2*candidates + 5 // answerer: offer, N, hangup, peer-left; caller: peer-joined, answer, N
	got := len(sl.caller.applied()) + len(sl.answerer.applied())
	return checkResult{expected: want, received: got, lost: max(0, want-got)}
}

// candidateFields is an RTCIceCandidateInit whose foundation is its index.
func candidateFields(i int) string {
	return `"candidate":{"candidate":"candidate:` + strconv.Itoa(i) +
		` 1 udp 2122260223 127.0.0.1 ` + strconv.Itoa(50000+i) +
		` typ host generation 0 ufrag lgen network-id 1","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"lgen"}`
}

func candidateIndex(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, "candidate:")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	i, err := strconv.Atoi(num)
	return i, err == nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sdpTemplate is the body of a plausible audio+video SDP; sdp pads it to the configured size.
var sdpTemplate = strings.Join([]string{
	"v=0",
	"o=- %s 2 IN IP4 127.0.0.1",
	"s=-",
	"t=0 0",
	"a=group:BUNDLE 0 1",
	"a=extmap-allow-mixed",
	"a=msid-semantic: WMS lgen",
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
	"c=IN IP4 0.0.0.0",
	"a=rtcp:9 IN IP4 0.0.0.0",
	"a=ice-ufrag:lgen",
	"a=ice-pwd:lgenlgenlgenlgenlgenlgen",
	"a=ice-options:trickle",
	"a=fingerprint:sha-256 4F:2A:91:0C:7E:55:13:B8:60:DA:2C:F1:09:3E:7B:44:A5:1D:C8:92:6E:30:F7:0B:18:5C:A3:E9:72:4D:06:BB",
	"a=setup:%s",
	"a=mid:0",
	"a=sendrecv",
	"a=rtcp-mux",
	"a=rtpmap:111 opus/48000/2",
	"a=fmtp:111 minptime=10;useinbandfec=1",
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103",
	"c=IN IP4 0.0.0.0",
	"a=mid:1",
	"a=sendrecv",
	"a=rtcp-mux",
	"a=rtcp-rsize",
	"a=rtpmap:96 VP8/90000",
	"a=rtcp-fb:96 goog-remb",
	"a=rtcp-fb:96 transport-cc",
	"a=rtcp-fb:96 ccm fir",
	"a=rtcp-fb:96 nack",
	"a=rtcp-fb:96 nack pli",
	"a=rtpmap:97 rtx/90000",
	"a=fmtp:97 apt=96",
}, "\r\n") + "\r\n"

// sdp returns the SDP of one side of a call, of about -sdp-bytes bytes.
func (g *gen) sdp(room, kind string) string {
	setup := "actpass"
	if kind == "answer" {
		setup = "active"
	}
	s := fmt.Sprintf(sdpTemplate, room, setup)
	var b strings.Builder
	b.WriteString(s)
	for i := 0; b.Len() < g.cfg.sdpBytes-2; i++ {
		line := fmt.Sprintf("a=x-pad:%d ", i)
		need := g.cfg.sdpBytes - b.Len() - len(line) - 2
		if need <= 0 {
			break
		}
		b.WriteString(line)
		b.WriteString(strings.Repeat("x", min(need, 72)))
		b.WriteString("\r\n")
	}
	return b.String()
}

// dialSlot connects a slot's two connections.
func (g *gen) dialSlot(ctx context.Context, sl *slot) error {
	for _, p := range []struct {
		s    **side
		inst int
	}{{&sl.caller, sl.callerInst}, {&sl.answerer, sl.ansIns}} {
		if *p.s != nil && (*p.s).conn.failure() == nil {
			continue
		}
		c, attempts, err := dial(ctx, g.dialer, g.urls[p.inst], g.cfg.attempt, &g.wsSent, &g.wsRecv)
		g.dialRetries.add(int64(attempts - 1))
		if err != nil {
			return err
		}
		g.conns.add(1)
		*p.s = newSide(g, c, p.inst)
	}
	return nil
}

func (g *gen) closeSlot(sl *slot) {
	for _, s := range []*side{sl.caller, sl.answerer} {
		if s != nil {
			s.conn.close()
			g.conns.add(-1)
		}
	}
	sl.caller, sl.answerer = nil, nil
}

// dialAll connects every slot, at most par at a time.
func (g *gen) dialAll(ctx context.Context, slots []*slot, par int) error {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, sl := range slots {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := g.dialSlot(ctx, sl); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

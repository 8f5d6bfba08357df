package signaling

import (
	"context"

	"github.com/switchboard-rtc/switchboard/store"
)

// A store that went back in time: after an unclean failover (the promoted replica lacked the
// master's last writes) a membership's next client seq in the store can be below what this
// instance already applied and acknowledged. The client does not send those messages again, so
// every later one would get out_of_order for good.
//
// The turn holder notices it: its seq is the one this instance expects next (every earlier one
// went through the store here, in order), yet the store answers Gap with an earlier next. It
// then consumes the missing numbers as skips and sends its batch again. The messages behind
// those numbers are lost (docs/deploy.md says when); the call goes on.

// maxRollback bounds the numbers one repair skips; a larger gap is left to out_of_order.
const maxRollback = 4096

// repairRollback runs after the turn holder's sendBatch.
func (h *Hub) repairRollback(ctx context.Context, m *membership, batch []*batchItem) {
	first := batch[0]
	if first.err != nil || !first.res.Gap || first.res.Next >= first.p.Seq {
		return
	}
	from, to := first.res.Next, first.p.Seq
	h.log.Warn("store lost acknowledged client messages; skipping their numbers",
		"room", m.room, "peer", m.peer, "store_next", from, "next", to)
	h.cfg.Metrics.StoreError("rollback")
	if to-from > maxRollback {
		return
	}
	for seq := from; seq < to; seq++ {
		p := first.p
		p.Seq, p.Kind, p.Body, p.To = seq, store.KindSkip, nil, ""
		if _, err := h.st.Send(ctx, p); err != nil {
			return // the batch keeps its Gap: the client retries, and the repair with it
		}
	}
	h.sendBatch(ctx, batch)
}

package store_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/store"
)

// KeySlot agrees with Redis's CLUSTER KEYSLOT, and each group's tag hashes into its group, so a
// room's timer set shares its slot range.
func TestKeySlotAndGroupTags(t *testing.T) {
	for key, want := range map[string]int{"foo": 12182, "123456789": 12739, "{user1000}.following": 3443,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "a{b}c": 3300} {
		if got := store.KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
	width := store.ClusterSlots / store.TimerGroups
	for g := range store.TimerGroups {
		if slot := store.KeySlot(store.TimersKey("p:", g)); slot/width != g {
			t.Errorf("group %d's timer set is in slot %d", g, slot)
		}
	}
	for _, room := range []string{"r1", "lobby", "x-42"} {
		if a, b := store.KeySlot(store.RoomKey("p:", room))/width, store.KeySlot(store.RoomTimersKey("p:", room))/width; a != b {
			t.Errorf("room %s in group %d, its timers in group %d", room, a, b)
		}
	}
}

package signal

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestKeyedFiresOnlyItsKey: a key's waiters wake on its own Fire, not on
// another key's, and a fired key is forgotten.
func TestKeyedFiresOnlyItsKey(t *testing.T) {
	var s Keyed[int]
	a, relA := s.Watch(1)
	b, relB := s.Watch(2)
	defer relA()
	defer relB()
	s.Fire(1)
	if !closed(a) || closed(b) {
		t.Fatalf("after Fire(1): a closed %v, b closed %v; want true, false", closed(a), closed(b))
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d after a fired key was forgotten, want 1", s.Len())
	}
	s.FireAll()
	if !closed(b) || s.Len() != 0 {
		t.Fatalf("after FireAll: b closed %v, Len %d", closed(b), s.Len())
	}
}

// TestKeyedReleaseForgets: a key whose last waiter released is forgotten,
// so abandoned waits do not accumulate; a second release is harmless.
func TestKeyedReleaseForgets(t *testing.T) {
	var s Keyed[string]
	_, rel1 := s.Watch("job")
	ch2, rel2 := s.Watch("job")
	rel1()
	rel1()
	if s.Len() != 1 {
		t.Fatalf("Len = %d with one waiter left, want 1", s.Len())
	}
	rel2()
	if s.Len() != 0 {
		t.Fatalf("Len = %d after every waiter released, want 0", s.Len())
	}
	if closed(ch2) {
		t.Fatal("release closed the channel")
	}
	s.Fire("job") // nobody watches: a no-op
}

// TestSetFireAll wakes every queue's waiters.
func TestSetFireAll(t *testing.T) {
	var s Set
	a, b := s.Get("a").C(), s.Get("b").C()
	s.FireAll()
	if !closed(a) || !closed(b) {
		t.Fatal("FireAll left a waiter asleep")
	}
}

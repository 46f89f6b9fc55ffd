package migration_test

import (
	"testing"
	"testing/fstest"

	"github.com/spoolrun/spool/internal/migration"
)

func TestRead(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.up.sql":   {Data: []byte("up2")},
		"m/0001_init.up.sql":   {Data: []byte("up1")},
		"m/0001_init.down.sql": {Data: []byte("down1")},
		"m/README":             {Data: []byte("ignored")},
	}
	ms, err := migration.Read(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0] != (migration.Migration{Version: 1, Name: "init", Up: "up1", Down: "down1"}) ||
		ms[1] != (migration.Migration{Version: 2, Name: "more", Up: "up2"}) {
		t.Fatalf("got %+v", ms)
	}
	if _, err := migration.Read(fstest.MapFS{"m/0003_x.down.sql": {Data: []byte("d")}}, "m"); err == nil {
		t.Fatal("a version without an up file: want an error")
	}
}

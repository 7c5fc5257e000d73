package weblang

import (
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPagesAddTheRuntime: the runtime appears in the page set's script folder, and
// nothing else of the page set changes.
func TestPagesAddTheRuntime(t *testing.T) {
	pages := fstest.MapFS{
		"js/strings.js": {Data: []byte(`export const dict = {"zh-CN": {}, "en": {}}; export const storageKey = "k";`)},
		"index.html":    {Data: []byte("<p>")},
	}
	fsys := Pages(pages, "js")
	f, err := fsys.Open("js/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !strings.Contains(string(b), `from "./strings.js"`) {
		t.Fatalf("js/i18n.js is not the runtime: %.80q", b)
	}
	if _, ok := f.(io.Seeker); !ok {
		t.Error("the runtime's file cannot seek, so http.ServeContent cannot answer ranges")
	}
	if b, err := fs.ReadFile(fsys, "index.html"); err != nil || string(b) != "<p>" {
		t.Errorf("index.html through the overlay: %q %v", b, err)
	}
	if _, err := fs.ReadFile(fsys, "i18n.js"); err == nil {
		t.Error("the runtime appears outside the script folder")
	}
}

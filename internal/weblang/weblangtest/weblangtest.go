// Package weblangtest checks, from a page set's tests, that its words are complete in
// both languages of internal/weblang.
package weblangtest

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

var (
	entry   = regexp.MustCompile(`(?m)^\s+"([a-zA-Z0-9_./-]+)":`)
	used    = regexp.MustCompile(`\bt\("([^"]+)"|data-i18n(?:-title|-placeholder)?="([^"]+)"`)
	literal = regexp.MustCompile(`"([a-z]+)\.([a-zA-Z_]+)"`)
)

// Check reads the dictionary in pages' js/strings.js and fails t unless the zh-CN and en
// blocks have the same keys and every key the page set's files name exists: t("…")
// calls, data-i18n attributes, and "prefix.key" literals (the [key, vars] pairs modules
// keep to translate later) whose prefix the dictionary has. A key ending in "." is a
// prefix completed at run time. minKeys and minUses guard the parse itself: fewer
// found means the search, not the page, is wrong. It returns the zh-CN keys for the
// caller's own checks of values its server sends.
func Check(t testing.TB, pages fs.FS, minKeys, minUses int) map[string]bool {
	t.Helper()
	const name = "js/strings.js"
	src, err := fs.ReadFile(pages, name)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	zhAt, enAt, end := strings.Index(text, `"zh-CN": {`), strings.Index(text, `"en": {`), strings.Index(text, "\n};")
	if zhAt < 0 || enAt < zhAt || end < enAt {
		t.Fatalf("%s: cannot find the two language blocks", name)
	}
	keys := func(block string) map[string]bool {
		out := map[string]bool{}
		for _, m := range entry.FindAllStringSubmatch(block, -1) {
			out[m[1]] = true
		}
		return out
	}
	zh, en := keys(text[zhAt:enAt]), keys(text[enAt:end])
	if len(zh) < minKeys {
		t.Fatalf("%s: only %d Chinese strings found, want at least %d: the parse is wrong", name, len(zh), minKeys)
	}
	for k := range zh {
		if !en[k] {
			t.Errorf("%q has no English", k)
		}
	}
	for k := range en {
		if !zh[k] {
			t.Errorf("%q has no Chinese", k)
		}
	}

	prefixes := map[string]bool{}
	for k := range zh {
		prefixes[strings.SplitN(k, ".", 2)[0]] = true
	}
	uses := 0
	err = fs.WalkDir(pages, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == name || path.Ext(p) == ".css" {
			return err
		}
		b, err := fs.ReadFile(pages, p)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if k := m[1] + m[2]; !zh[k] && !strings.HasSuffix(k, ".") {
				t.Errorf("%s uses %q, which the dictionary lacks", p, k)
			}
			uses++
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			if k := m[1] + "." + m[2]; prefixes[m[1]] && !zh[k] {
				t.Errorf("%s names %q, which the dictionary lacks", p, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if uses < minUses {
		t.Errorf("only %d uses of the dictionary found in the pages, want at least %d: the search is wrong", uses, minUses)
	}
	return zh
}

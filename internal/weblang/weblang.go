// Package weblang is the two-language runtime (Simplified Chinese, the default, and
// English) of the pages Lifeline embeds: the box's status page and the hub's ED screen.
//
// The runtime is one ES module, i18n.js. A page set serves it beside its own strings.js,
// which exports the dictionary (dict, with "zh-CN" and "en" blocks of the same keys)
// and storageKey (where the browser remembers the choice). Pages wraps a page set's
// files so that the runtime is there; modules keep importing "./i18n.js".
package weblang

import (
	"embed"
	"io/fs"
	"path"
)

//go:embed i18n.js
var runtime embed.FS

// RuntimeName is the runtime module's file name in a page set's script folder.
const RuntimeName = "i18n.js"

// Pages returns pages with the runtime added as dir/i18n.js (dir is the page set's
// script folder, such as "js"). Every other name is pages' own.
func Pages(pages fs.FS, dir string) fs.FS {
	return overlay{pages: pages, at: path.Join(dir, RuntimeName)}
}

type overlay struct {
	pages fs.FS
	at    string
}

func (o overlay) Open(name string) (fs.File, error) {
	if name == o.at {
		return runtime.Open(RuntimeName)
	}
	return o.pages.Open(name)
}

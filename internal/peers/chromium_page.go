package peers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Eval evaluates a JavaScript expression in the tab, awaiting it if it is a promise,
// and fails the test if it throws or its value does not decode as T. An expression
// that meets the page in the middle of a navigation (a page that goes to the sign-in
// page on its own, say) is evaluated again in the new page, for up to 2 s.
func Eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
		if err == nil {
			return v
		}
		if !pageChanging(err) || time.Now().After(deadline) || tab.Err() != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageChanging reports whether err is the DevTools protocol saying that the page an
// expression ran in went away under it, which a navigation does. Chromium says so
// only in the message of a generic server error (-32000).
func pageChanging(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "navigated or closed") ||
		strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Cannot find context with specified id")
}

// Navigate opens url in the tab and waits for it to load, failing the test if it does not.
func Navigate(t testing.TB, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

package peers

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// Eval evaluates a JavaScript expression in the tab, awaiting it if it is a promise,
// and fails the test if it throws or its value does not decode as T.
func Eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// Navigate opens url in the tab and waits for it to load, failing the test if it does not.
func Navigate(t testing.TB, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

package peers

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserStarts checks that the launcher gives a tab with WebRTC, which every
// browser test builds on.
func TestBrowserStarts(t *testing.T) {
	tab := Browser(t, BrowserOptions{})
	ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`typeof RTCPeerConnection === "function"`))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("no RTCPeerConnection in chromium")
	}
}

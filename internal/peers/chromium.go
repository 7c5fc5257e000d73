package peers

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BrowserOptions adds to the flags Chromium starts with, for tests that need a fake
// camera or microphone.
type BrowserOptions struct {
	// FakeVideo, if set, is a .y4m file that getUserMedia returns as the camera.
	FakeVideo string
	// FakeAudio, if set, is a .wav file that getUserMedia returns as the microphone.
	FakeAudio string
	// Timeout bounds the whole browser session; zero means two minutes.
	Timeout time.Duration
	// Flags are further command-line switches, e.g. "ignore-certificate-errors-spki-list"
	// to trust a test's own certificate.
	Flags map[string]any
}

// Browser starts Debian's headless Chromium for the test, with WebRTC allowed on
// loopback and host candidates given as addresses rather than mDNS names, and returns
// a chromedp context for one tab. The browser is closed when the test ends. A missing
// chromium skips or fails the test as Need does.
func Browser(t testing.TB, o BrowserOptions) context.Context {
	t.Helper()
	path := Need(t, "chromium")[0]
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate"),
	)
	if o.FakeVideo != "" || o.FakeAudio != "" {
		opts = append(opts,
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-fake-ui-for-media-stream", true))
	}
	if o.FakeVideo != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-video-capture", o.FakeVideo))
	}
	if o.FakeAudio != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-audio-capture", o.FakeAudio))
	}
	for name, value := range o.Flags {
		opts = append(opts, chromedp.Flag(name, value))
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	return tab
}

package linkemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tunName is the TUN device in each namespace; the namespaces keep names apart.
const tunName = "lle0"

// openTUN creates the TUN device tunName in namespace ns and returns it as a
// non-blocking file, so that reads wait in Go's poller and Close wakes them. The device
// lives as long as the file is open: when the process dies the kernel removes it.
func openTUN(ns string) (*os.File, error) {
	var f *os.File
	err := inNS(ns, func() error {
		// The device is created in the namespace of the thread that opens /dev/net/tun.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(tunName)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("create TUN device %s: %w", tunName, err)
		}
		f = os.NewFile(uintptr(fd), "tun:"+ns)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("linkemu: TUN in %s: %w", ns, err)
	}
	return f, nil
}

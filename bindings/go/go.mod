module losskit.dev/go/losskit

go 1.19

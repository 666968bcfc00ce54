module github.com/taprouter/taprouter

go 1.26

/*
 * Test helper for the Wine test only; never shipped. Holds a file open the
 * way an editor or a database on Windows does: with no sharing, so any
 * other program's open fails with a sharing violation. Prints "held" once
 * the file is open and keeps it until a second file (the release signal)
 * exists, or two minutes pass.
 *
 *   holdopen.exe FILE RELEASE
 */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: holdopen FILE RELEASE\n");
        return 2;
    }
    HANDLE h = CreateFileW(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "cannot open: error %lu\n", GetLastError());
        return 1;
    }
    printf("held\n");
    fflush(stdout);
    for (int i = 0; i < 1200; i++) {
        if (GetFileAttributesW(argv[2]) != INVALID_FILE_ATTRIBUTES)
            break;
        Sleep(100);
    }
    CloseHandle(h);
    return 0;
}

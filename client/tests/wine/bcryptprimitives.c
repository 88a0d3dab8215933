/*
 * Test scaffolding for running nimbus-client.exe under Wine 8 only; never
 * shipped. Rust's standard library gets random bytes from ProcessPrng in
 * bcryptprimitives.dll (Windows 10 and later), which Wine 8 lacks. This
 * stand-in exports ProcessPrng and forwards to advapi32's RtlGenRandom
 * (SystemFunction036), which Wine has. Built with mingw by `make windows-test`
 * and placed beside the .exe in the test's folder.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}

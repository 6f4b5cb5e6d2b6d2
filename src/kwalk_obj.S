/* kwalk_obj.S - the eBPF object built from kwalk.bpf.c, inside mixspy (KWALK_BPF_OBJ: its path). */
	.section .rodata
	.global kwalk_obj
	.global kwalk_obj_end
	.balign 8
kwalk_obj:
	.incbin KWALK_BPF_OBJ
kwalk_obj_end:
	.section .note.GNU-stack,"",@progbits

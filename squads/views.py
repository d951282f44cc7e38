from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def _todo(request, **kwargs):
    return HttpResponse("todo")


service_list = catalog_import = catalog_export = service_detail = service_edit = _todo
squad_list = my_squads = squad_detail = tribe_detail = system_detail = api_detail = _todo
